//! The delivery worker: claims due jobs from the shared work queue, fans events out to endpoints,
//! and delivers them. No database connection is held while a receiver thinks, and a job leaves
//! the queue only in the transaction that records its result; a worker killed mid-job loses its
//! lease and another worker (or itself, restarted) tries again with the same event id.
//!
//! The database work is batched so that its round trips are shared by many events: one claim
//! takes as many jobs as there are free slots; per tenant, one transaction fans all claimed
//! events out and queues their deliveries already leased to this worker (no second claim); and
//! successful attempts are recorded together, one statement per tenant for everything that
//! finished while the previous batch was being written.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use db::work_queue::{self, ClaimedJob};
use domain::TenantId;
use domain::clock::Clock;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot, watch};
use uuid::Uuid;

use crate::client::{AttemptRequest, Client, ClientConfig, ClientError};
use crate::schedule::{self, Next};
use crate::{MAX_BODY_BYTES, secret_context};

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Deliveries in flight at once, across all endpoints.
    pub concurrency: usize,
    /// Deliveries in flight at once to one endpoint: a slow one cannot take every slot.
    pub per_endpoint: usize,
    /// How long a claimed job stays ours; longer than the 10 s request limit with room to spare.
    pub lease: Duration,
    /// Fallback polling when no notification arrives (notifications make it rarely matter).
    pub poll_interval: Duration,
    /// Up to this many percent added to each retry delay.
    pub max_jitter_pct: u32,
    pub client: ClientConfig,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 128,
            per_endpoint: 8,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            max_jitter_pct: 10,
            client: ClientConfig::default(),
        }
    }
}

pub struct Worker {
    db: db::Db,
    vault: vault::Vault,
    clock: Arc<dyn Clock>,
    config: WorkerConfig,
    client: Client,
    /// Requests in flight: taken just for the HTTP exchange.
    requests: Arc<Semaphore>,
    /// Jobs this worker holds, from claim to recorded result: twice the request cap, so that
    /// fanning out and recording overlap other deliveries' requests instead of idling them.
    jobs: Arc<Semaphore>,
    slots: Arc<Slots>,
    /// Decrypted endpoint secrets, keyed by endpoint and checked against the ciphertext read with
    /// every batch: a rotated (or otherwise changed) secret never matches a stale entry.
    secrets: Mutex<HashMap<Uuid, (String, Arc<str>)>>,
    recorder: Mutex<Recorder>,
}

/// Per endpoint, the jobs held and the cap on its requests in flight; and the signal that a
/// slot came back.
#[derive(Default)]
struct Slots {
    endpoints: Mutex<HashMap<Uuid, EndpointShare>>,
    freed: Notify,
}

struct EndpointShare {
    held: usize,
    /// `per_endpoint` permits: the endpoint's requests in flight. A slow endpoint waits on its own
    /// permits, not on the worker's.
    requests: Arc<Semaphore>,
}

/// One of the jobs a worker may hold, bound to an endpoint's share once it carries a delivery.
/// Given back on drop, however the job ended.
struct Slot {
    _permit: OwnedSemaphorePermit,
    endpoint: Option<(Uuid, Arc<Semaphore>)>,
    slots: Arc<Slots>,
}

impl Slot {
    /// Takes one of `endpoint`'s shares (at most `2 × per_endpoint` jobs held per endpoint);
    /// false when the endpoint is full.
    fn bind(&mut self, endpoint: Uuid, per_endpoint: usize) -> bool {
        debug_assert!(self.endpoint.is_none());
        let mut endpoints = lock(&self.slots.endpoints);
        let share = endpoints.entry(endpoint).or_insert_with(|| EndpointShare {
            held: 0,
            requests: Arc::new(Semaphore::new(per_endpoint.max(1))),
        });
        if share.held >= 2 * per_endpoint.max(1) {
            return false;
        }
        share.held += 1;
        self.endpoint = Some((endpoint, share.requests.clone()));
        true
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((endpoint, _)) = &self.endpoint {
            let mut endpoints = lock(&self.slots.endpoints);
            if let Some(share) = endpoints.get_mut(endpoint) {
                share.held = share.held.saturating_sub(1);
                if share.held == 0 {
                    endpoints.remove(endpoint);
                }
            }
        }
        self.slots.freed.notify_one();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Successful attempts waiting to be recorded, and whether a delivery task is recording them.
#[derive(Default)]
struct Recorder {
    pending: Vec<PendingSuccess>,
    flushing: bool,
}

/// A success to record, and where to say whether its job was still ours.
type PendingSuccess = (TenantId, db::webhooks::Success, oneshot::Sender<Result<bool, String>>);

/// A delivery ready to send: its row, the endpoint as read with it, and our claim on its job.
struct Send {
    lock_token: Uuid,
    delivery: db::webhooks::DeliveryRow,
    target: db::webhooks::Target,
}

/// Which fan-out jobs a fan-out takes.
enum Source<'a> {
    /// Jobs we claimed (and hold by their lock tokens).
    Held(&'a [ClaimedJob]),
    /// Up to this many of the tenant's due jobs, claimed in the fan-out's own statement.
    Due(i64),
}

/// What one claim brought.
struct Claim {
    jobs: Vec<(ClaimedJob, Slot)>,
    /// The claim took as many jobs as it asked for: more are probably due.
    full: bool,
    /// Due jobs were left for later because their endpoint was full.
    deferred: bool,
}

/// When the run loop claims next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    /// As soon as this many slots are free (1 after a notification; a bigger batch while a
    /// backlog drains, so each claim's round trips serve many jobs).
    Slots(usize),
    /// When a slot comes back (an endpoint that was full may have room).
    AfterFreed,
    /// On a notification or the polling tick.
    Idle,
}

#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error("cannot decrypt the endpoint secret: {0}")]
    Secret(#[from] vault::VaultError),
    #[error("recording the result failed: {0}")]
    Record(String),
}

impl From<sqlx::Error> for JobError {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e.into())
    }
}

impl Worker {
    pub fn new(
        db: db::Db,
        vault: vault::Vault,
        clock: Arc<dyn Clock>,
        config: WorkerConfig,
    ) -> Result<Arc<Self>, ClientError> {
        let client = Client::with_idle_per_host(&config.client, config.per_endpoint.max(16))?;
        let requests = Arc::new(Semaphore::new(config.concurrency.max(1)));
        let jobs = Arc::new(Semaphore::new(2 * config.concurrency.max(1)));
        Ok(Arc::new(Self {
            db,
            vault,
            clock,
            config,
            client,
            requests,
            jobs,
            slots: Arc::new(Slots::default()),
            secrets: Mutex::new(HashMap::new()),
            recorder: Mutex::new(Recorder::default()),
        }))
    }

    /// Runs until `stop` turns true, then lets in-flight deliveries finish (up to the request
    /// timeout). Database outages are survived with backoff.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut listener = None;
        let mut backoff = Duration::from_millis(100);
        let mut tasks = tokio::task::JoinSet::new();
        let capacity = 2 * self.config.concurrency.max(1);
        let batch = (capacity / 4).max(1);
        let mut want = Want::Slots(1);
        // Tenants whose new events a notification announced: claimed and fanned out directly.
        let mut hinted: Vec<TenantId> = Vec::new();
        let mut next_poll = tokio::time::Instant::now() + self.config.poll_interval;
        loop {
            if *stop.borrow() {
                break;
            }
            while tasks.try_join_next().is_some() {}
            if listener.is_none() {
                listener = work_queue::listen(&self.db).await.ok();
            }
            hinted.sort_by_key(|t| t.as_uuid());
            hinted.dedup();
            for tenant in std::mem::take(&mut hinted) {
                match self.fan_out_due(tenant).await {
                    Ok((sends, full)) => {
                        if !sends.is_empty() {
                            tasks.spawn(self.clone().deliver_all(sends));
                        }
                        if full {
                            want = Want::Slots(1); // the rest by the usual claim, as slots free up
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook fan-out failed; claiming the usual way");
                        want = Want::Slots(1);
                    }
                }
            }
            let free = self.jobs.available_permits();
            if let Want::Slots(needed) = want
                && free >= needed.min(capacity)
                && free > 0
            {
                match self.claim().await {
                    Ok(claim) => {
                        backoff = Duration::from_millis(100);
                        next_poll = tokio::time::Instant::now() + self.config.poll_interval;
                        want = if claim.full {
                            Want::Slots(batch)
                        } else if claim.deferred {
                            Want::AfterFreed
                        } else {
                            Want::Idle
                        };
                        if !claim.jobs.is_empty() {
                            tasks.spawn(self.clone().process(claim.jobs));
                        }
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook worker cannot reach the database; retrying");
                        listener = None;
                        self.db.discard_broken_connections().await;
                        tokio::select! {
                            () = tokio::time::sleep(backoff) => {}
                            _ = stop.changed() => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                        continue;
                    }
                }
            }
            let notified = async {
                match listener.as_mut() {
                    Some(l) => l.recv().await.map(|n| n.payload().to_owned()).map_err(|_| ()),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                result = notified => match result.as_deref().map(fan_out_tenants) {
                    Ok(Some(tenants)) => hinted.extend(tenants),
                    Ok(None) => want = Want::Slots(1),
                    Err(()) => {
                        listener = None;
                        want = Want::Slots(1);
                    }
                },
                () = tokio::time::sleep_until(next_poll) => {
                    next_poll = tokio::time::Instant::now() + self.config.poll_interval;
                    want = Want::Slots(1);
                }
                () = self.slots.freed.notified(), if want != Want::Idle => {
                    if want == Want::AfterFreed {
                        want = Want::Slots(1);
                    }
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = stop.changed() => {}
            }
        }
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(crate::TIMEOUT + Duration::from_secs(2), drain).await.is_err() {
            tracing::warn!(
                "webhook deliveries still in flight at shutdown; their leases will expire and they will be retried"
            );
        }
    }

    /// Claims and processes every job due now, to completion. For tests and tools driving time
    /// by hand; returns how many jobs were claimed (deliveries a fan-out hands straight to its
    /// sender are not counted separately).
    pub async fn run_once(self: &Arc<Self>) -> Result<usize, db::DbError> {
        let mut total = 0;
        loop {
            let claim = self.claim().await?;
            if claim.jobs.is_empty() {
                return Ok(total);
            }
            total += claim.jobs.len();
            self.clone().process(claim.jobs).await;
        }
    }

    /// A free slot, if any.
    fn free_slot(&self) -> Option<Slot> {
        let permit = self.jobs.clone().try_acquire_owned().ok()?;
        Some(Slot { _permit: permit, endpoint: None, slots: self.slots.clone() })
    }

    /// Claims as many due jobs as there are free slots, skipping full endpoints, in one platform
    /// transaction.
    async fn claim(&self) -> Result<Claim, db::DbError> {
        let free = self.jobs.available_permits();
        if free == 0 {
            return Ok(Claim { jobs: Vec::new(), full: false, deferred: true });
        }
        let saturated: Vec<Uuid> = {
            let endpoints = lock(&self.slots.endpoints);
            let full = 2 * self.config.per_endpoint.max(1);
            endpoints.iter().filter(|(_, share)| share.held >= full).map(|(k, _)| *k).collect()
        };
        let now = self.clock.now();
        let limit = free.min(256);
        let mut tx = self.db.platform_tx().await?;
        let jobs = work_queue::claim(&mut tx, now, self.lease(), limit as i64, &saturated).await?;
        tx.commit().await.map_err(db::DbError::from)?;
        let full = jobs.len() == limit;

        // The claim cannot count per endpoint within one batch; release extras for a full endpoint.
        let mut claimed = Vec::with_capacity(jobs.len());
        let (mut released, mut released_tokens) = (Vec::new(), Vec::new());
        for job in jobs {
            let slot = self.free_slot().and_then(|mut slot| match job.group_key {
                Some(endpoint) => slot.bind(endpoint, self.config.per_endpoint).then_some(slot),
                None => Some(slot),
            });
            match slot {
                Some(slot) => claimed.push((job, slot)),
                None => {
                    released.push(job.job_id);
                    released_tokens.push(job.lock_token);
                }
            }
        }
        if !released.is_empty() {
            let mut tx = self.db.platform_tx().await?;
            work_queue::release(&mut tx, &released, &released_tokens, now).await?;
            tx.commit().await.map_err(db::DbError::from)?;
        }
        Ok(Claim { jobs: claimed, full, deferred: !saturated.is_empty() || !released.is_empty() })
    }

    fn lease(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.config.lease).unwrap_or(chrono::Duration::seconds(60))
    }

    /// Handles claimed jobs: per tenant, one transaction fans out all its events and one loads all
    /// its retries; then every delivery is sent on its own task. Returns when all are done.
    async fn process(self: Arc<Self>, jobs: Vec<(ClaimedJob, Slot)>) {
        let mut groups: HashMap<(Uuid, String), Vec<(ClaimedJob, Slot)>> = HashMap::new();
        for (job, slot) in jobs {
            groups.entry((job.tenant_id, job.kind.clone())).or_default().push((job, slot));
        }
        let mut set = tokio::task::JoinSet::new();
        for ((tenant, kind), jobs) in groups {
            let this = self.clone();
            set.spawn(async move {
                let tenant = TenantId(tenant);
                let sends = match kind.as_str() {
                    work_queue::KIND_OUTBOX_FANOUT => this.fan_out(tenant, jobs).await,
                    work_queue::KIND_WEBHOOK_DELIVERY => this.load(tenant, jobs).await,
                    other => {
                        tracing::error!(kind = other, "unknown job kind in the work queue");
                        Vec::new()
                    }
                };
                this.deliver_all(sends).await;
            });
        }
        while set.join_next().await.is_some() {}
    }

    /// Sends each delivery on its own task; returns when all are done.
    async fn deliver_all(self: Arc<Self>, sends: Vec<(Send, Slot)>) {
        let mut deliveries = tokio::task::JoinSet::new();
        for (send, slot) in sends {
            let this = self.clone();
            deliveries.spawn(async move {
                let job = send.delivery.id;
                if let Err(e) = this.deliver(send, &slot).await {
                    // The lease expires and the job runs again; nothing is lost.
                    tracing::warn!(%job, error = %e, "webhook delivery failed; it will be retried");
                }
                drop(slot);
            });
        }
        while deliveries.join_next().await.is_some() {}
    }

    /// Fans a tenant's claimed events out, all in one transaction; if that fails, one event at a
    /// time, so one bad event cannot hold the others back. Jobs that fail stay leased and run
    /// again when the lease expires.
    async fn fan_out(&self, tenant: TenantId, jobs: Vec<(ClaimedJob, Slot)>) -> Vec<(Send, Slot)> {
        let (jobs, mut pool): (Vec<ClaimedJob>, Vec<Slot>) = jobs.into_iter().unzip();
        match self.fan_out_batch(tenant, Source::Held(&jobs), &mut pool).await {
            Ok((sends, _)) => sends,
            Err(e) if jobs.len() == 1 => {
                tracing::warn!(job = %jobs[0].job_id, error = %e, "webhook fan-out failed; it will be retried");
                Vec::new()
            }
            Err(e) => {
                tracing::warn!(jobs = jobs.len(), error = %e, "webhook fan-out batch failed; trying its events one by one");
                let mut sends = Vec::new();
                for job in &jobs {
                    match self.fan_out_batch(tenant, Source::Held(std::slice::from_ref(job)), &mut pool).await
                    {
                        Ok((more, _)) => sends.extend(more),
                        Err(e) => {
                            tracing::warn!(job = %job.job_id, error = %e, "webhook fan-out failed; it will be retried")
                        }
                    }
                }
                sends
            }
        }
    }

    /// Claims and fans out the tenant's due events in one tenant transaction (a notification
    /// said where they are), as many as there are free slots. Returns whether that took every
    /// slot (more may be due).
    async fn fan_out_due(self: &Arc<Self>, tenant: TenantId) -> Result<(Vec<(Send, Slot)>, bool), JobError> {
        let mut pool = Vec::new();
        while pool.len() < 256 {
            match self.free_slot() {
                Some(slot) => pool.push(slot),
                None => break,
            }
        }
        if pool.is_empty() {
            return Ok((Vec::new(), true));
        }
        let limit = pool.len();
        let (sends, events) = self.fan_out_batch(tenant, Source::Due(limit as i64), &mut pool).await?;
        Ok((sends, events >= limit))
    }

    /// One transaction, four round trips for any number of events: take the jobs (those we hold,
    /// or the tenant's due ones) and the (event, endpoint) pairs they make, then create the
    /// deliveries. Those we have a slot for are queued leased to us and returned to send now; the
    /// others are queued due now for whichever worker has room. Also returns how many events
    /// were taken.
    async fn fan_out_batch(
        &self,
        tenant: TenantId,
        source: Source<'_>,
        pool: &mut Vec<Slot>,
    ) -> Result<(Vec<(Send, Slot)>, usize), JobError> {
        let now = self.clock.now();
        let mut tx = self.db.tenant_tx(tenant).await?;
        let taken = match source {
            Source::Held(jobs) => {
                let ids: Vec<Uuid> = jobs.iter().map(|j| j.job_id).collect();
                let tokens: Vec<Uuid> = jobs.iter().map(|j| j.lock_token).collect();
                db::webhooks::take_fan_outs(&mut tx, &ids, &tokens, now).await?
            }
            Source::Due(limit) => db::webhooks::claim_fan_outs(&mut tx, tenant, now, limit).await?,
        };
        let (events, targets) = (taken.events, taken.targets);
        if targets.is_empty() {
            tx.commit().await?;
            return Ok((Vec::new(), events));
        }
        // serde_json writes object keys in sorted order: the same event always gives the same bytes.
        let mut bodies: HashMap<Uuid, Vec<u8>> = HashMap::new();
        for t in &targets {
            bodies
                .entry(t.event_id)
                .or_insert_with(|| serde_json::to_vec(&t.payload).expect("JSON values serialize"));
        }
        let mut slots: HashMap<Uuid, Slot> = HashMap::new();
        let mut rows = Vec::with_capacity(targets.len());
        for t in &targets {
            let id = Uuid::now_v7();
            let slot = self.slot_for(pool, t.endpoint_id);
            let leased = slot.is_some();
            if let Some(slot) = slot {
                slots.insert(id, slot);
            }
            rows.push(db::webhooks::NewDelivery {
                id,
                endpoint_id: t.endpoint_id,
                event_id: t.event_id,
                event_type: &t.event_type,
                body: &bodies[&t.event_id],
                leased,
            });
        }
        let lease_until = now + self.lease();
        let leased = db::webhooks::queue_deliveries(&mut tx, tenant, &rows, now, lease_until).await?;
        tx.commit().await?;

        let leased: HashMap<Uuid, Uuid> = leased.into_iter().collect();
        let mut sends = Vec::with_capacity(leased.len());
        for (row, t) in rows.iter().zip(&targets) {
            let (Some(lock_token), Some(slot)) = (leased.get(&row.id), slots.remove(&row.id)) else {
                continue;
            };
            let delivery = db::webhooks::DeliveryRow {
                id: row.id,
                tenant_id: tenant.as_uuid(),
                endpoint_id: row.endpoint_id,
                event_id: row.event_id,
                event_type: row.event_type.to_owned(),
                body: row.body.to_vec(),
                status: "pending".to_owned(),
                attempts: 0,
                next_attempt_at: Some(now),
                last_status: None,
                last_error: None,
                dead_reason: None,
                created_at: now,
                updated_at: now,
                succeeded_at: None,
                dead_at: None,
            };
            sends.push((Send { lock_token: *lock_token, delivery, target: t.target.clone() }, slot));
        }
        Ok((sends, events))
    }

    /// A slot for a new delivery to `endpoint`: one the fan-out jobs held, or a free one, within
    /// the endpoint's cap.
    fn slot_for(&self, pool: &mut Vec<Slot>, endpoint: Uuid) -> Option<Slot> {
        let mut slot = pool.pop().or_else(|| self.free_slot())?;
        if slot.bind(endpoint, self.config.per_endpoint) {
            Some(slot)
        } else {
            pool.push(slot);
            None
        }
    }

    /// Reads a tenant's claimed deliveries (retries, and jobs taken over from a dead worker) with
    /// their endpoints in one transaction; jobs whose delivery is gone or finished leave the queue.
    async fn load(&self, tenant: TenantId, jobs: Vec<(ClaimedJob, Slot)>) -> Vec<(Send, Slot)> {
        let result: Result<_, JobError> = async {
            let ids: Vec<Uuid> = jobs.iter().map(|(j, _)| j.job_id).collect();
            let mut tx = self.db.tenant_tx(tenant).await?;
            let rows = db::webhooks::deliveries_for_send(&mut tx, &ids).await?;
            let mut rows: HashMap<Uuid, db::webhooks::SendRow> = rows
                .into_iter()
                .filter(|r| r.delivery.status == "pending")
                .map(|r| (r.delivery.id, r))
                .collect();
            let finished: Vec<Uuid> = ids.iter().copied().filter(|id| !rows.contains_key(id)).collect();
            if !finished.is_empty() {
                work_queue::remove_many(&mut tx, &finished).await?;
            }
            tx.commit().await?;
            Ok(jobs
                .into_iter()
                .filter_map(|(job, slot)| {
                    let row = rows.remove(&job.job_id)?;
                    let send =
                        Send { lock_token: job.lock_token, delivery: row.delivery, target: row.target };
                    Some((send, slot))
                })
                .collect())
        }
        .await;
        result.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "loading webhook deliveries failed; they will be retried");
            Vec::new()
        })
    }

    /// The endpoint's secret in clear, decrypted once per ciphertext.
    fn secret(&self, endpoint: Uuid, sealed: &str) -> Result<Arc<str>, vault::VaultError> {
        if let Some((cached_for, secret)) = lock(&self.secrets).get(&endpoint)
            && cached_for == sealed
        {
            return Ok(secret.clone());
        }
        let secret: Arc<str> =
            String::from_utf8_lossy(&self.vault.decrypt(sealed, &secret_context(endpoint))?).into();
        let mut secrets = lock(&self.secrets);
        if secrets.len() >= 4096 {
            secrets.clear();
        }
        secrets.insert(endpoint, (sealed.to_owned(), secret.clone()));
        Ok(secret)
    }

    /// One delivery attempt and its bookkeeping.
    async fn deliver(&self, send: Send, slot: &Slot) -> Result<(), JobError> {
        let Send { lock_token, delivery, target } = send;
        let tenant = TenantId(delivery.tenant_id);
        let started_at = self.clock.now();
        let attempt = delivery.attempts + 1;
        let dead = if !target.enabled {
            Some(match &target.disabled_reason {
                Some(r) => format!("endpoint disabled ({r})"),
                None => "endpoint disabled".to_owned(),
            })
        } else if delivery.body.len() > MAX_BODY_BYTES {
            Some(format!(
                "body_too_large: {} bytes exceeds the {MAX_BODY_BYTES}-byte limit; download it from the dead-letter queue",
                delivery.body.len()
            ))
        } else {
            None
        };
        if let Some(reason) = dead {
            let mut tx = self.db.tenant_tx(tenant).await?;
            db::webhooks::mark_dead(&mut tx, delivery.id, delivery.attempts, None, &reason, started_at)
                .await?;
            if work_queue::complete(&mut tx, delivery.id, lock_token).await? {
                tx.commit().await?;
            } else {
                tx.rollback().await?; // another worker owns the job now
            }
            return Ok(());
        }
        let secret = self.secret(delivery.endpoint_id, &target.secret_enc)?;

        // The endpoint's request cap first, then the worker's: waiting for a slow endpoint
        // takes nothing from the others.
        let for_endpoint = match &slot.endpoint {
            Some((_, requests)) => {
                Some(requests.acquire().await.expect("request semaphores are never closed"))
            }
            None => None,
        };
        let request = self.requests.acquire().await.expect("the request semaphore is never closed");
        let outcome = self
            .client
            .send(&AttemptRequest {
                url: &target.url,
                secret: &secret,
                event_id: delivery.event_id,
                event_type: &delivery.event_type,
                attempt: attempt as u32,
                body: &delivery.body,
                timestamp: started_at,
            })
            .await;
        drop((request, for_endpoint));
        if outcome.blocked {
            tracing::warn!(endpoint = %delivery.endpoint_id, "webhook target blocked by the SSRF guard");
        }
        let latency_ms = outcome.latency.as_millis().min(i32::MAX as u128) as i32;

        if outcome.success {
            // The common case: recorded together with other deliveries' successes.
            let success = db::webhooks::Success {
                delivery_id: delivery.id,
                endpoint_id: delivery.endpoint_id,
                event_id: delivery.event_id,
                event_type: delivery.event_type.clone(),
                attempt,
                started_at,
                latency_ms,
                http_status: outcome.status.map(i32::from).unwrap_or(200),
                response_excerpt: outcome.excerpt.clone(),
                lock_token,
            };
            self.record_success(tenant, success).await?;
            return Ok(());
        }

        let now = self.clock.now();
        let mut tx = self.db.tenant_tx(tenant).await?;
        let record = db::webhooks::AttemptRecord {
            delivery: &delivery,
            attempt,
            started_at,
            latency_ms,
            http_status: outcome.status.map(i32::from),
            error: outcome.error.as_deref(),
            response_excerpt: outcome.excerpt.as_deref(),
            succeeded: false,
        };
        db::webhooks::record_attempt(&mut tx, &record).await?;
        let still_ours = self.apply_failure(&mut tx, lock_token, &delivery, &outcome, attempt, now).await?;
        if !still_ours {
            // Our lease ran out mid-attempt and another worker owns the job now; keep the log
            // of this attempt but leave the delivery's state to the new owner.
            tx.rollback().await?;
            let mut tx = self.db.tenant_tx(tenant).await?;
            let lost = db::webhooks::AttemptRecord {
                error: Some("lease expired during the attempt; result not applied"),
                ..record
            };
            db::webhooks::record_attempt(&mut tx, &lost).await?;
            tx.commit().await?;
            return Ok(());
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records a 2xx attempt and finishes its delivery, in a batch with whatever other successes
    /// are waiting: the first delivery to arrive while no batch is being written writes them all
    /// (one transaction per tenant), then any that arrived meanwhile, until none are left. Each
    /// caller returns once its own result is committed (or failed).
    async fn record_success(
        &self,
        tenant: TenantId,
        success: db::webhooks::Success,
    ) -> Result<bool, JobError> {
        let (reply, result) = oneshot::channel();
        let leader = {
            let mut recorder = lock(&self.recorder);
            recorder.pending.push((tenant, success, reply));
            !std::mem::replace(&mut recorder.flushing, true)
        };
        if leader {
            // If this task is cancelled mid-write, whoever comes next takes over; results not
            // written are dropped, so their callers see an error and the leases expire.
            struct Resign<'a>(&'a Mutex<Recorder>);
            impl Drop for Resign<'_> {
                fn drop(&mut self) {
                    let mut recorder = lock(self.0);
                    if recorder.flushing {
                        recorder.flushing = false;
                        recorder.pending.clear();
                    }
                }
            }
            let _resign = Resign(&self.recorder);
            loop {
                let batch = {
                    let mut recorder = lock(&self.recorder);
                    if recorder.pending.is_empty() {
                        recorder.flushing = false;
                        break;
                    }
                    std::mem::take(&mut recorder.pending)
                };
                self.write_successes(batch).await;
            }
        }
        match result.await {
            Ok(Ok(still_ours)) => Ok(still_ours),
            Ok(Err(e)) => Err(JobError::Record(e)),
            Err(_) => Err(JobError::Record("the batch was abandoned".to_owned())),
        }
    }

    async fn write_successes(&self, batch: Vec<PendingSuccess>) {
        let mut by_tenant: HashMap<TenantId, (Vec<db::webhooks::Success>, Vec<_>)> = HashMap::new();
        for (tenant, success, reply) in batch {
            let entry = by_tenant.entry(tenant).or_default();
            entry.0.push(success);
            entry.1.push(reply);
        }
        for (tenant, (successes, replies)) in by_tenant {
            let result: Result<Vec<bool>, JobError> = async {
                let mut tx = self.db.tenant_tx(tenant).await?;
                let ours =
                    db::webhooks::finish_successes(&mut tx, tenant, &successes, self.clock.now()).await?;
                tx.commit().await?;
                Ok(ours)
            }
            .await;
            match result {
                Ok(ours) => {
                    for (reply, ours) in replies.into_iter().zip(ours) {
                        let _ = reply.send(Ok(ours));
                    }
                }
                Err(e) => {
                    let e = e.to_string();
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// Schedules the retry, dead-letters, or disables the endpoint (410). Returns whether we
    /// still held the job.
    async fn apply_failure(
        &self,
        tx: &mut db::Tx,
        lock_token: Uuid,
        delivery: &db::webhooks::DeliveryRow,
        outcome: &crate::client::AttemptOutcome,
        attempt: i32,
        now: DateTime<Utc>,
    ) -> Result<bool, JobError> {
        let tenant = TenantId(delivery.tenant_id);
        let status = outcome.status.map(i32::from);
        let tx = &mut **tx;
        let still_ours = if outcome.status == Some(410) {
            let reason = format!("the receiver answered 410 Gone at {}", now.to_rfc3339());
            db::webhooks::disable_endpoint(tx, delivery.endpoint_id, &reason, now).await?;
            db::audit::insert(tx, &disabled_audit(tenant, delivery.endpoint_id, &reason, now)).await?;
            db::webhooks::mark_dead(tx, delivery.id, attempt, status, "410 Gone: endpoint disabled", now)
                .await?;
            work_queue::complete(tx, delivery.id, lock_token).await?
        } else {
            let error = outcome.error.clone().unwrap_or_else(|| "failed".to_owned());
            let jitter: f64 = rand::random();
            match schedule::after_failure(
                attempt as u32,
                now,
                outcome.retry_after,
                self.config.max_jitter_pct,
                jitter,
            ) {
                Next::RetryAt(at) => {
                    db::webhooks::mark_failed(tx, delivery.id, attempt, status, &error, at, now).await?;
                    work_queue::reschedule(tx, delivery.id, lock_token, at).await?
                }
                Next::DeadLetter => {
                    db::webhooks::mark_dead(tx, delivery.id, attempt, status, &error, now).await?;
                    work_queue::complete(tx, delivery.id, lock_token).await?
                }
            }
        };
        Ok(still_ours)
    }
}

/// The tenants named by a `fanout:<id>,<id>…` notification; None for any other payload (then
/// the usual claim finds the work).
fn fan_out_tenants(payload: &str) -> Option<Vec<TenantId>> {
    let list = payload.strip_prefix("fanout:")?;
    list.split(',').map(|id| id.parse().ok().map(TenantId)).collect()
}

fn disabled_audit(tenant: TenantId, endpoint: Uuid, reason: &str, at: DateTime<Utc>) -> db::audit::NewAudit {
    db::audit::NewAudit {
        id: domain::AuditId(Uuid::now_v7()),
        tenant_id: Some(tenant),
        at,
        actor: db::audit::Actor::system(),
        action: "webhook.endpoint.disabled".into(),
        resource_type: "webhook_endpoint".into(),
        resource_id: Some(endpoint.to_string()),
        before: None,
        after: Some(serde_json::json!({"enabled": false, "reason": reason})),
        source_ip: None,
        request_id: None,
    }
}
