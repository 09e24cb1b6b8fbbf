// A ring tone made with WebAudio (no audio file to ship): the North American ring cadence,
// 440 + 480 Hz for 2 s every 6 s, quiet. Browsers may keep an AudioContext suspended until the
// page has had a click; then the call panel is the only signal, which is fine.

export interface Ringer {
  start: () => void;
  stop: () => void;
}

export function createRinger(): Ringer {
  let ctx: AudioContext | null = null;
  let timer: ReturnType<typeof setInterval> | undefined;
  let gain: GainNode | null = null;

  const burst = () => {
    if (!ctx || !gain) return;
    const t = ctx.currentTime;
    for (const f of [440, 480]) {
      const osc = ctx.createOscillator();
      osc.frequency.value = f;
      osc.connect(gain);
      osc.start(t);
      osc.stop(t + 2);
    }
  };

  return {
    start() {
      if (ctx || typeof AudioContext === 'undefined') return;
      try {
        ctx = new AudioContext();
        gain = ctx.createGain();
        gain.gain.value = 0.06;
        gain.connect(ctx.destination);
        void ctx.resume().catch(() => undefined);
        burst();
        timer = setInterval(burst, 6_000);
      } catch {
        ctx = null;
      }
    },
    stop() {
      clearInterval(timer);
      timer = undefined;
      const c = ctx;
      ctx = null;
      gain = null;
      if (c) void c.close().catch(() => undefined);
    },
  };
}
