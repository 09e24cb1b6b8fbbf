//! The delivery worker: claims due jobs from the shared work queue, fans events out to endpoints,
//! and delivers them. Each job is handled in two short transactions around the HTTP call (no
//! database connection is held while a receiver thinks), and leaves the queue only in the
//! transaction that records its result; a worker killed mid-job loses its lease and another
//! worker (or itself, restarted) tries again with the same event id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use db::work_queue::{self, ClaimedJob};
use domain::TenantId;
use domain::clock::Clock;
use tokio::sync::{Semaphore, watch};
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
    permits: Arc<Semaphore>,
    in_flight: Mutex<HashMap<Uuid, usize>>,
}

#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error("cannot decrypt the endpoint secret: {0}")]
    Secret(#[from] vault::VaultError),
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
        let client = Client::new(&config.client)?;
        let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
        Ok(Arc::new(Self {
            db,
            vault,
            clock,
            config,
            client,
            permits,
            in_flight: Mutex::new(HashMap::new()),
        }))
    }

    /// Runs until `stop` turns true, then lets in-flight deliveries finish (up to the request
    /// timeout). Database outages are survived with backoff.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut listener = None;
        let mut backoff = Duration::from_millis(100);
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            if *stop.borrow() {
                break;
            }
            while tasks.try_join_next().is_some() {}
            if listener.is_none() {
                listener = work_queue::listen(&self.db).await.ok();
            }
            let claimed = match self.claim().await {
                Ok(claimed) => {
                    backoff = Duration::from_millis(100);
                    claimed
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
            };
            let got_work = !claimed.is_empty();
            for (job, permit) in claimed {
                let this = self.clone();
                tasks.spawn(async move {
                    this.process(job).await;
                    drop(permit);
                });
            }
            if got_work && self.permits.available_permits() > 0 {
                continue; // more may be due right now
            }
            let notified = async {
                match listener.as_mut() {
                    Some(l) => l.recv().await.map(|_| ()).map_err(|_| ()),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                result = notified => if result.is_err() { listener = None; },
                () = tokio::time::sleep(self.config.poll_interval) => {}
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
    /// by hand; returns how many jobs ran.
    pub async fn run_once(self: &Arc<Self>) -> Result<usize, db::DbError> {
        let mut total = 0;
        loop {
            let claimed = self.claim().await?;
            if claimed.is_empty() {
                return Ok(total);
            }
            total += claimed.len();
            let mut tasks = tokio::task::JoinSet::new();
            for (job, permit) in claimed {
                let this = self.clone();
                tasks.spawn(async move {
                    this.process(job).await;
                    drop(permit);
                });
            }
            while tasks.join_next().await.is_some() {}
        }
    }

    /// Claims as many due jobs as there are free slots, skipping saturated endpoints.
    async fn claim(&self) -> Result<Vec<(ClaimedJob, tokio::sync::OwnedSemaphorePermit)>, db::DbError> {
        let free = self.permits.available_permits();
        if free == 0 {
            return Ok(Vec::new());
        }
        let saturated: Vec<Uuid> = {
            let in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            in_flight.iter().filter(|(_, n)| **n >= self.config.per_endpoint).map(|(k, _)| *k).collect()
        };
        let now = self.clock.now();
        let lease = chrono::Duration::from_std(self.config.lease).unwrap_or(chrono::Duration::seconds(60));
        let mut tx = self.db.platform_tx().await?;
        let mut jobs = work_queue::claim(&mut tx, now, lease, free.min(256) as i64, &saturated).await?;
        tx.commit().await.map_err(db::DbError::from)?;

        // The claim cannot count per endpoint within one batch; release extras for a full endpoint.
        let mut claimed = Vec::with_capacity(jobs.len());
        let mut released = Vec::new();
        {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            for job in jobs.drain(..) {
                if let Some(group) = job.group_key {
                    let n = in_flight.entry(group).or_insert(0);
                    if *n >= self.config.per_endpoint {
                        released.push(job);
                        continue;
                    }
                    *n += 1;
                }
                match self.permits.clone().try_acquire_owned() {
                    Ok(permit) => claimed.push((job, permit)),
                    Err(_) => released.push(job),
                }
            }
        }
        if !released.is_empty() {
            let mut tx = self.db.platform_tx().await?;
            for job in &released {
                work_queue::reschedule(&mut tx, job.job_id, job.lock_token, now).await?;
            }
            tx.commit().await.map_err(db::DbError::from)?;
        }
        Ok(claimed)
    }

    async fn process(&self, job: ClaimedJob) {
        let result = match job.kind.as_str() {
            work_queue::KIND_OUTBOX_FANOUT => self.fan_out(&job).await,
            work_queue::KIND_WEBHOOK_DELIVERY => self.deliver(&job).await,
            other => {
                tracing::error!(kind = other, "unknown job kind in the work queue");
                Ok(())
            }
        };
        if let Some(group) = job.group_key {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = in_flight.get_mut(&group) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    in_flight.remove(&group);
                }
            }
        }
        if let Err(e) = result {
            // The lease expires and the job runs again; nothing is lost.
            tracing::warn!(job = %job.job_id, kind = %job.kind, error = %e, "webhook job failed; it will be retried");
        }
    }

    /// Turns one outbox event into one delivery per subscribed, enabled endpoint.
    async fn fan_out(&self, job: &ClaimedJob) -> Result<(), JobError> {
        let now = self.clock.now();
        let tenant = job.tenant();
        let mut tx = self.db.tenant_tx(tenant).await?;
        let event = match db::outbox::get(&mut tx, job.job_id).await {
            Ok(event) => event,
            Err(db::DbError::NotFound) => {
                work_queue::remove(&mut tx, job.job_id).await?;
                tx.commit().await?;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let endpoints = match event.target_endpoint_id {
            Some(only) => match db::webhooks::get_endpoint(&mut tx, only).await {
                Ok(endpoint) => vec![endpoint],
                Err(db::DbError::NotFound) => Vec::new(),
                Err(e) => return Err(e.into()),
            },
            None => db::webhooks::matching_endpoints(&mut tx, tenant, &event.event_type).await?,
        };
        // serde_json writes object keys in sorted order: the same event always gives the same bytes.
        let body = serde_json::to_vec(&event.payload).expect("JSON values serialize");
        for endpoint in endpoints {
            db::webhooks::create_and_queue_delivery(
                &mut tx,
                tenant,
                endpoint.id,
                event.id,
                &event.event_type,
                &body,
                now,
            )
            .await?;
        }
        if db::outbox::finish_fan_out(&mut tx, event.id, job.lock_token, now).await? {
            tx.commit().await?;
        } else {
            // Another worker took the job over after our lease ran out; it will fan out.
            tx.rollback().await?;
        }
        Ok(())
    }

    /// One delivery attempt and its bookkeeping.
    async fn deliver(&self, job: &ClaimedJob) -> Result<(), JobError> {
        let tenant = job.tenant();
        let started_at = self.clock.now();
        let mut tx = self.db.tenant_tx(tenant).await?;
        let (delivery, endpoint) = match db::webhooks::get_delivery_for_send(&mut tx, job.job_id).await? {
            Some((d, e)) if d.status == "pending" => (d, e),
            _ => {
                work_queue::remove(&mut tx, job.job_id).await?;
                tx.commit().await?;
                return Ok(());
            }
        };
        let attempt = delivery.attempts + 1;
        if !endpoint.enabled {
            let reason = match &endpoint.disabled_reason {
                Some(r) => format!("endpoint disabled ({r})"),
                None => "endpoint disabled".to_owned(),
            };
            db::webhooks::mark_dead(&mut tx, delivery.id, delivery.attempts, None, &reason, started_at)
                .await?;
            work_queue::complete(&mut tx, job.job_id, job.lock_token).await?;
            tx.commit().await?;
            return Ok(());
        }
        if delivery.body.len() > MAX_BODY_BYTES {
            let reason = format!(
                "body_too_large: {} bytes exceeds the {MAX_BODY_BYTES}-byte limit; download it from the dead-letter queue",
                delivery.body.len()
            );
            db::webhooks::mark_dead(&mut tx, delivery.id, delivery.attempts, None, &reason, started_at)
                .await?;
            work_queue::complete(&mut tx, job.job_id, job.lock_token).await?;
            tx.commit().await?;
            return Ok(());
        }
        let secret =
            String::from_utf8_lossy(&self.vault.decrypt(&endpoint.secret_enc, &secret_context(endpoint.id))?)
                .into_owned();
        tx.commit().await?;

        let outcome = self
            .client
            .send(&AttemptRequest {
                url: &endpoint.url,
                secret: &secret,
                event_id: delivery.event_id,
                event_type: &delivery.event_type,
                attempt: attempt as u32,
                body: &delivery.body,
                timestamp: started_at,
            })
            .await;
        if outcome.blocked {
            tracing::warn!(endpoint = %endpoint.id, "webhook target blocked by the SSRF guard");
        }

        let now = self.clock.now();
        let mut tx = self.db.tenant_tx(tenant).await?;
        let status = outcome.status.map(i32::from);
        let record = db::webhooks::AttemptRecord {
            delivery: &delivery,
            attempt,
            started_at,
            latency_ms: outcome.latency.as_millis().min(i32::MAX as u128) as i32,
            http_status: status,
            error: outcome.error.as_deref(),
            response_excerpt: outcome.excerpt.as_deref(),
            succeeded: outcome.success,
        };
        let still_ours = if outcome.success {
            // The common case, in one statement.
            db::webhooks::finish_success(&mut tx, &record, job.lock_token, now).await?
        } else {
            db::webhooks::record_attempt(&mut tx, &record).await?;
            self.apply_failure(&mut tx, job, &delivery, &endpoint, &outcome, attempt, now).await?
        };
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

    /// Schedules the retry, dead-letters, or disables the endpoint (410). Returns whether we
    /// still held the job.
    #[allow(clippy::too_many_arguments)]
    async fn apply_failure(
        &self,
        tx: &mut db::Tx,
        job: &ClaimedJob,
        delivery: &db::webhooks::DeliveryRow,
        endpoint: &db::webhooks::EndpointRow,
        outcome: &crate::client::AttemptOutcome,
        attempt: i32,
        now: DateTime<Utc>,
    ) -> Result<bool, JobError> {
        let tenant = job.tenant();
        let status = outcome.status.map(i32::from);
        let tx = &mut **tx;
        let still_ours = if outcome.status == Some(410) {
            let reason = format!("the receiver answered 410 Gone at {}", now.to_rfc3339());
            db::webhooks::disable_endpoint(tx, endpoint.id, &reason, now).await?;
            db::audit::insert(tx, &disabled_audit(tenant, endpoint.id, &reason, now)).await?;
            db::webhooks::mark_dead(tx, delivery.id, attempt, status, "410 Gone: endpoint disabled", now)
                .await?;
            work_queue::complete(tx, job.job_id, job.lock_token).await?
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
                    work_queue::reschedule(tx, job.job_id, job.lock_token, at).await?
                }
                Next::DeadLetter => {
                    db::webhooks::mark_dead(tx, delivery.id, attempt, status, &error, now).await?;
                    work_queue::complete(tx, job.job_id, job.lock_token).await?
                }
            }
        };
        Ok(still_ours)
    }
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
