//! Tenant isolation, proven against a real PostgreSQL through the real pool:
//! the catalog sweep (every tenant table has forced RLS with complete policies), the role audit,
//! and cross-tenant probes including interleaved and rolled-back transactions.

use chrono::Utc;
use db::{tenants, users};
use domain::{Role, TenantId, UserId};
use sqlx::{ConnectOptions as _, Row as _};
use test_support::TestDb;
use uuid::Uuid;

/// Tables that hold tenant data without a `tenant_id` column, checked by hand.
const EXTRA_TENANT_TABLES: &[&str] = &["tenants"];
/// Tables that may honour platform mode: identity data the login path and operators need, and
/// `work_queue`, which holds only job ids, tenant ids and times (workers claim due jobs there).
const PLATFORM_TABLES: &[&str] = &[
    "tenants",
    "users",
    "mfa_recovery_codes",
    "login_failures",
    "sessions",
    "api_keys",
    "audit_log",
    "work_queue",
];

async fn tenant_tables(conn: &mut sqlx::PgConnection) -> Vec<String> {
    let mut names: Vec<String> = sqlx::query_scalar(
        "select c.relname::text from pg_class c
           join pg_namespace n on n.oid = c.relnamespace
           join pg_attribute a on a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped
         where n.nspname = 'public' and c.relkind in ('r', 'p')",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    names.extend(EXTRA_TENANT_TABLES.iter().map(|s| s.to_string()));
    names.sort();
    names
}

#[tokio::test]
async fn every_tenant_table_has_forced_rls_with_complete_policies() {
    let t = TestDb::new().await;
    let mut conn = t.owner_options().connect().await.unwrap();
    let tables = tenant_tables(&mut conn).await;
    assert!(tables.len() >= 8, "expected the foundation's tenant tables, found {tables:?}");
    for table in &tables {
        let row = sqlx::query("select relrowsecurity, relforcerowsecurity from pg_class where relname = $1 and relnamespace = 'public'::regnamespace")
            .bind(table)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert!(row.get::<bool, _>(0), "{table}: row level security is not enabled");
        assert!(row.get::<bool, _>(1), "{table}: row level security is not forced");
        let policies: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
            "select cmd::text, qual, with_check from pg_policies where schemaname = 'public' and tablename = $1",
        )
        .bind(table)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for cmd in ["SELECT", "INSERT", "UPDATE", "DELETE"] {
            let covering: Vec<_> = policies.iter().filter(|(c, _, _)| c == cmd || c == "ALL").collect();
            assert!(!covering.is_empty(), "{table}: no policy for {cmd}");
            for (_, qual, check) in &covering {
                for expr in [qual, check].into_iter().flatten() {
                    assert_ne!(expr.trim(), "true", "{table}: {cmd} policy is always true");
                    if !PLATFORM_TABLES.contains(&table.as_str()) {
                        assert!(
                            !expr.contains("sivo_is_platform"),
                            "{table}: business tables must not honour platform mode"
                        );
                    }
                }
            }
            if cmd == "INSERT" || cmd == "UPDATE" {
                assert!(
                    covering.iter().all(|(_, _, check)| check.is_some()),
                    "{table}: {cmd} policy lacks WITH CHECK"
                );
            }
        }
    }
}

#[tokio::test]
async fn app_role_owns_nothing_and_cannot_bypass_rls() {
    let t = TestDb::new().await;
    let mut conn = t.owner_options().connect().await.unwrap();
    let (is_super, bypass): (bool, bool) =
        sqlx::query_as("select rolsuper, rolbypassrls from pg_roles where rolname = 'sivo_app'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(!is_super && !bypass, "sivo_app must be neither superuser nor BYPASSRLS");
    let owned: i64 = sqlx::query_scalar(
        "select count(*) from pg_class c join pg_roles r on r.oid = c.relowner
         where r.rolname = 'sivo_app'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(owned, 0, "sivo_app must own no relation");
    let member_of_owner: bool = sqlx::query_scalar("select pg_has_role('sivo_app', 'sivo_owner', 'member')")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(!member_of_owner, "sivo_app must not be a member of the owner role");
    // The application really is connected as sivo_app.
    let current: String =
        sqlx::query_scalar("select current_user::text").fetch_one(t.db.pool()).await.unwrap();
    assert_eq!(current, "sivo_app");
    // No view, materialized view or SECURITY DEFINER function can route around the policies.
    let risky: i64 = sqlx::query_scalar(
        "select (select count(*) from pg_class c where c.relnamespace = 'public'::regnamespace and c.relkind in ('v', 'm', 'f'))
              + (select count(*) from pg_proc p where p.pronamespace = 'public'::regnamespace and p.prosecdef)",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        risky, 0,
        "views, materialized views, foreign tables or SECURITY DEFINER functions need review"
    );
}

struct Seeded {
    tenant: TenantId,
    user: UserId,
}

async fn seed(t: &TestDb, slug: &str) -> Seeded {
    let now = Utc::now();
    let tenant = TenantId(Uuid::new_v4());
    let mut tx = t.db.platform_tx().await.unwrap();
    tenants::create(&mut tx, tenants::NewTenant { id: tenant, slug, name: slug, plan: "free", now })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    let user = UserId(Uuid::new_v4());
    users::create(
        &mut tx,
        users::NewUser {
            id: user,
            tenant_id: Some(tenant),
            email: &format!("agent@{slug}.example.com"),
            display_name: "Agent",
            role: Role::Agent,
            password_hash: "x",
            now,
        },
    )
    .await
    .unwrap();
    db::auth::record_failure(&mut tx, Some(tenant), user, "test", now, now - chrono::Duration::minutes(15))
        .await
        .unwrap();
    db::auth::replace_recovery_codes(&mut tx, Some(tenant), user, &[vec![1, 2, 3]]).await.unwrap();
    let event = domain::events::Event::new(
        domain::EventId(Uuid::new_v4()),
        tenant,
        now,
        domain::events::EventPayload::AgentPaused(domain::events::AgentPaused {
            agent_id: user,
            reason: "lunch".into(),
        }),
    );
    db::outbox::enqueue(&mut tx, &event).await.unwrap();
    db::audit::insert(
        &mut tx,
        &db::audit::NewAudit {
            id: domain::AuditId(Uuid::now_v7()),
            tenant_id: Some(tenant),
            at: now,
            actor: db::audit::Actor::system(),
            action: "test.seed".into(),
            resource_type: "tenant".into(),
            resource_id: None,
            before: None,
            after: None,
            source_ip: None,
            request_id: None,
        },
    )
    .await
    .unwrap();
    db::sessions::create(
        &mut tx,
        db::sessions::NewSession {
            id: domain::SessionId(Uuid::new_v4()),
            tenant_id: Some(tenant),
            user_id: user,
            token_hash: Uuid::new_v4().as_bytes(),
            kind: "full",
            now,
            idle_timeout_s: 60,
            expires_at: now,
            source_ip: None,
            user_agent: None,
        },
    )
    .await
    .unwrap();
    db::api_keys::create(
        &mut tx,
        db::api_keys::NewApiKey {
            id: domain::ApiKeyId(Uuid::new_v4()),
            tenant_id: tenant,
            name: "k",
            prefix: &Uuid::new_v4().simple().to_string()[..12],
            key_hash: b"h",
            created_by: Some(user),
            now,
        },
    )
    .await
    .unwrap();
    // Webhooks: an endpoint, a delivery (which queues a job) and an attempt.
    let endpoint = Uuid::now_v7();
    db::webhooks::create_endpoint(
        &mut tx,
        db::webhooks::NewEndpoint {
            id: endpoint,
            tenant_id: tenant,
            url: "https://hooks.example.com/",
            description: "",
            enabled: true,
            event_types: &[],
            secret_enc: "v1:x",
            now,
        },
    )
    .await
    .unwrap();
    let delivery_id = db::webhooks::create_and_queue_delivery(
        &mut tx,
        tenant,
        endpoint,
        event.id.as_uuid(),
        "agent.paused",
        b"{}",
        now,
    )
    .await
    .unwrap()
    .unwrap();
    let delivery = db::webhooks::get_delivery(&mut tx, delivery_id).await.unwrap();
    db::webhooks::record_attempt(
        &mut tx,
        &db::webhooks::AttemptRecord {
            delivery: &delivery,
            attempt: 1,
            started_at: now,
            latency_ms: 1,
            http_status: Some(200),
            error: None,
            response_excerpt: None,
            succeeded: true,
        },
    )
    .await
    .unwrap();
    // SIP: the agent's account and a binding, a trunk and a DID.
    db::sip::ensure_account(&mut tx, tenant, user, "v1:x", now).await.unwrap();
    db::sip::upsert_binding(
        &mut tx,
        &db::sip::NewBinding {
            tenant,
            user,
            contact: "sip:agent@192.0.2.7:5060",
            expires_at: now + chrono::Duration::hours(1),
            call_id: "c",
            cseq: 1,
            q: None,
            transport: "udp",
            source: "192.0.2.7:5060",
            node_id: "n",
            connection_id: None,
            user_agent: None,
            now,
        },
    )
    .await
    .unwrap();
    let trunk = Uuid::new_v4();
    let fields = db::trunks::TrunkFields {
        name: "carrier",
        host: "sip.example.com",
        port: 5060,
        transport: "udp",
        allowed_cidrs: &["192.0.2.0/24".to_owned()],
        username: None,
        password_enc: None,
        register: false,
        keepalive: true,
    };
    db::trunks::create_trunk(&mut tx, trunk, tenant, &fields, now).await.unwrap();
    let did = db::trunks::DidFields {
        number: "+4930123456",
        trunk_id: trunk,
        destination_type: "none",
        destination_id: None,
    };
    db::trunks::create_did(&mut tx, Uuid::new_v4(), tenant, &did, now).await.unwrap();
    // Contact center: settings, a queue with the agent as member, the agent's status, a call.
    db::tenant_settings::set_record_calls(&mut tx, tenant, true, now).await.unwrap();
    let queue = Uuid::new_v4();
    let fields = db::queues::QueueFields {
        name: "sales",
        ring_timeout_secs: 20,
        max_wait_secs: 300,
        overflow_type: "none",
        overflow_id: None,
        music_on_hold: None,
        record_calls: false,
    };
    db::queues::create_queue(&mut tx, queue, tenant, &fields, now).await.unwrap();
    db::queues::add_member(&mut tx, tenant, queue, user, now).await.unwrap();
    db::agent_states::set_agent_status(
        &mut tx,
        tenant,
        user,
        domain::events::AgentStatus::Available,
        None,
        now,
    )
    .await
    .unwrap();
    let call = domain::CallId(Uuid::new_v4());
    let new_call = db::calls::NewCall {
        id: call,
        direction: domain::events::CallDirection::Inbound,
        from: "+15550100001",
        to: "+4930123456",
        did: Some("+4930123456"),
        did_id: None,
        trunk_id: Some(trunk),
        at: now,
    };
    db::calls::create_call(&mut tx, tenant, &new_call).await.unwrap();
    db::calls::enter_queue(&mut tx, tenant, call, queue, now).await.unwrap();
    tx.commit().await.unwrap();
    Seeded { tenant, user }
}

async fn count_rows(conn: &mut sqlx::PgConnection, table: &str) -> i64 {
    sqlx::query_scalar(&format!("select count(*) from {table}")).fetch_one(conn).await.unwrap()
}

async fn count_tenant_rows(conn: &mut sqlx::PgConnection, table: &str, tenant: TenantId) -> i64 {
    let column = if table == "tenants" { "id" } else { "tenant_id" };
    sqlx::query_scalar(&format!("select count(*) from {table} where {column} = $1"))
        .bind(tenant.as_uuid())
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn tenants_see_only_their_rows_in_every_tenant_table() {
    let t = TestDb::new().await;
    let a = seed(&t, "tenant-a").await;
    let b = seed(&t, "tenant-b").await;
    let mut owner = t.owner_options().connect().await.unwrap();
    let tables = tenant_tables(&mut owner).await;

    for table in &tables {
        // As A: B's rows do not exist for select, update or delete.
        let mut tx = t.db.tenant_tx(a.tenant).await.unwrap();
        assert!(count_tenant_rows(&mut tx, table, a.tenant).await > 0, "{table}: A sees its own rows");
        assert_eq!(count_tenant_rows(&mut tx, table, b.tenant).await, 0, "{table}: A sees B's rows");
        let column = if table == "tenants" { "id" } else { "tenant_id" };
        let updated = sqlx::query(&format!("update {table} set {column} = {column} where {column} = $1"))
            .bind(b.tenant.as_uuid())
            .execute(&mut *tx)
            .await
            .unwrap();
        assert_eq!(updated.rows_affected(), 0, "{table}: A updated B's rows");
        let deleted = sqlx::query(&format!("delete from {table} where {column} = $1"))
            .bind(b.tenant.as_uuid())
            .execute(&mut *tx)
            .await
            .unwrap();
        assert_eq!(deleted.rows_affected(), 0, "{table}: A deleted B's rows");
        tx.rollback().await.unwrap();

        // Moving A's rows into B is refused by WITH CHECK.
        if table != "tenants" {
            let mut tx = t.db.tenant_tx(a.tenant).await.unwrap();
            let moved = sqlx::query(&format!("update {table} set tenant_id = $1 where tenant_id = $2"))
                .bind(b.tenant.as_uuid())
                .bind(a.tenant.as_uuid())
                .execute(&mut *tx)
                .await;
            assert!(moved.is_err(), "{table}: A moved rows into B");
            tx.rollback().await.unwrap();
        }

        // No tenant set, or garbage: zero rows, never all rows.
        let mut tx = t.db.bare_tx().await.unwrap();
        assert_eq!(count_rows(&mut tx, table).await, 0, "{table}: rows visible without a tenant");
        tx.rollback().await.unwrap();
        // Garbage: zero rows or an error (the cast fails), never rows.
        for garbage in ["not-a-uuid", "' or 1=1 --", "00000000-0000-0000-0000-00000000000g"] {
            let mut tx = t.db.bare_tx().await.unwrap();
            sqlx::query("select set_config('app.tenant_id', $1, true)")
                .bind(garbage)
                .execute(&mut *tx)
                .await
                .unwrap();
            let visible: Result<i64, _> =
                sqlx::query_scalar(&format!("select count(*) from {table}")).fetch_one(&mut *tx).await;
            assert!(matches!(visible, Ok(0) | Err(_)), "{table}: rows visible with tenant {garbage:?}");
            tx.rollback().await.unwrap();
        }
        let mut tx = t.db.bare_tx().await.unwrap();
        sqlx::query("select set_config('app.tenant_id', '', true)").execute(&mut *tx).await.unwrap();
        assert_eq!(count_rows(&mut tx, table).await, 0, "{table}: rows visible with an empty tenant");
        tx.rollback().await.unwrap();
    }

    // Inserting a row for B while acting as A is refused.
    let mut tx = t.db.tenant_tx(a.tenant).await.unwrap();
    let insert = users::create(
        &mut tx,
        users::NewUser {
            id: UserId(Uuid::new_v4()),
            tenant_id: Some(b.tenant),
            email: "intruder@example.com",
            display_name: "x",
            role: Role::Admin,
            password_hash: "x",
            now: Utc::now(),
        },
    )
    .await;
    assert!(insert.is_err(), "A inserted a user into B");
    tx.rollback().await.unwrap();

    // Lookups by B's ids from A find nothing.
    let mut tx = t.db.tenant_tx(a.tenant).await.unwrap();
    assert!(matches!(users::get(&mut tx, b.user).await, Err(db::DbError::NotFound)));
    assert!(matches!(tenants::get(&mut tx, b.tenant).await, Err(db::DbError::NotFound)));
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn tenant_setting_never_leaks_between_transactions_on_one_connection() {
    let t = TestDb::new().await;
    let a = seed(&t, "leak-a").await;
    let b = seed(&t, "leak-b").await;
    // A pool of exactly one connection: every transaction below reuses it.
    let db = db::Db::connect(t.app_options(), 1).await.unwrap();
    for round in 0..20 {
        let (me, other) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let mut tx = db.tenant_tx(me.tenant).await.unwrap();
        assert_eq!(count_tenant_rows(&mut tx, "users", other.tenant).await, 0);
        assert_eq!(count_rows(&mut tx, "users").await, 1);
        if round % 3 == 0 {
            // An error mid-transaction, then rollback: the setting must vanish with it.
            let failed = sqlx::query("select 1/0").execute(&mut *tx).await;
            assert!(failed.is_err());
            tx.rollback().await.unwrap();
        } else {
            tx.commit().await.unwrap();
        }
        let mut bare = db.bare_tx().await.unwrap();
        let setting: Option<String> =
            sqlx::query_scalar("select nullif(current_setting('app.tenant_id', true), '')")
                .fetch_one(&mut *bare)
                .await
                .unwrap();
        assert_eq!(setting, None, "round {round}: tenant leaked into the next transaction");
        assert_eq!(count_rows(&mut bare, "users").await, 0);
        bare.rollback().await.unwrap();
    }
    // A dropped (never committed) transaction is rolled back too.
    {
        let mut tx = db.tenant_tx(a.tenant).await.unwrap();
        assert_eq!(count_rows(&mut tx, "users").await, 1);
    }
    let mut bare = db.bare_tx().await.unwrap();
    assert_eq!(count_rows(&mut bare, "users").await, 0);
}

#[tokio::test]
async fn outbox_event_exists_only_if_its_transaction_commits() {
    let t = TestDb::new().await;
    let a = seed(&t, "outbox-a").await;
    let before = {
        let mut tx = t.db.tenant_tx(a.tenant).await.unwrap();
        db::outbox::list_recent(&mut tx, a.tenant, 100).await.unwrap().len()
    };
    let event = |reason: &str| {
        domain::events::Event::new(
            domain::EventId(Uuid::new_v4()),
            a.tenant,
            Utc::now(),
            domain::events::EventPayload::AgentPaused(domain::events::AgentPaused {
                agent_id: a.user,
                reason: reason.into(),
            }),
        )
    };
    let mut tx = t.db.tenant_tx(a.tenant).await.unwrap();
    db::outbox::enqueue(&mut tx, &event("rolled back")).await.unwrap();
    tx.rollback().await.unwrap();
    let committed = event("committed");
    let mut tx = t.db.tenant_tx(a.tenant).await.unwrap();
    db::outbox::enqueue(&mut tx, &committed).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = t.db.tenant_tx(a.tenant).await.unwrap();
    let rows = db::outbox::list_recent(&mut tx, a.tenant, 100).await.unwrap();
    assert_eq!(rows.len(), before + 1);
    assert_eq!(rows[0].id, committed.id.as_uuid());
    assert_eq!(rows[0].event_type, "agent.paused");
    let back: domain::events::Event = serde_json::from_value(rows[0].payload.clone()).unwrap();
    assert_eq!(back, committed);
}
