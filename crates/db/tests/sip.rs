//! Registration bindings against a real PostgreSQL: `sip::register` in one statement (add,
//! refresh, out-of-order, remove, wildcard, purge of expired ones, the binding limit, and
//! whether the change is one others must hear about), refreshes as HOT updates, the sweep of
//! expired bindings, and the announcement of a new SIP password.

use chrono::{DateTime, Duration, Utc};
use db::sip::{self, Registration, WantedBinding};
use db::{tenants, users};
use domain::{Role, TenantId, UserId};
use test_support::TestDb;
use uuid::Uuid;

async fn agent(t: &TestDb) -> (TenantId, UserId) {
    let tenant = TenantId(Uuid::new_v4());
    let now = Utc::now();
    let mut tx = t.db.platform_tx().await.unwrap();
    let slug = format!("t{}", tenant.as_uuid().simple());
    tenants::create(&mut tx, tenants::NewTenant { id: tenant, slug: &slug, name: "T", plan: "free", now })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let user = UserId(Uuid::new_v4());
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    users::create(
        &mut tx,
        users::NewUser {
            id: user,
            tenant_id: Some(tenant),
            email: "agent@example.com",
            display_name: "Agent",
            role: Role::Agent,
            password_hash: "x",
            now,
        },
    )
    .await
    .unwrap();
    sip::ensure_account(&mut tx, tenant, user, "v1:x", now).await.unwrap();
    tx.commit().await.unwrap();
    (tenant, user)
}

struct Req<'a> {
    contacts: Vec<(&'a str, Option<i64>)>,
    wildcard: bool,
    call_id: &'a str,
    cseq: i64,
    transport: &'a str,
    now: DateTime<Utc>,
}

impl<'a> Req<'a> {
    fn new(contacts: &[(&'a str, Option<i64>)], call_id: &'a str, cseq: i64, now: DateTime<Utc>) -> Self {
        Self { contacts: contacts.to_vec(), wildcard: false, call_id, cseq, transport: "udp", now }
    }
}

async fn register(t: &TestDb, tenant: TenantId, user: UserId, r: &Req<'_>) -> sip::Registered {
    let contacts: Vec<WantedBinding> = r
        .contacts
        .iter()
        .map(|(c, secs)| WantedBinding {
            contact: (*c).to_owned(),
            expires_at: secs.map(|s| r.now + Duration::seconds(s)),
            q: None,
        })
        .collect();
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    let out = sip::register(
        &mut tx,
        &Registration {
            tenant,
            user,
            wildcard: r.wildcard,
            contacts: &contacts,
            call_id: r.call_id,
            cseq: r.cseq,
            transport: r.transport,
            source: "192.0.2.7:5060",
            node_id: "n1",
            connection_id: None,
            user_agent: Some("phone"),
            max_bindings: 2,
            now: r.now,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    out
}

fn contacts(r: &sip::Registered) -> Vec<(String, DateTime<Utc>)> {
    let mut v: Vec<_> = r.bindings.iter().map(|b| (b.contact.clone(), b.expires_at)).collect();
    v.sort();
    v
}

fn t0() -> DateTime<Utc> {
    // Whole milliseconds: PostgreSQL keeps microseconds, and the tests compare round trips.
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap()
}

#[tokio::test]
async fn register_adds_refreshes_removes_and_says_what_changed() {
    let t = TestDb::new().await;
    let (tenant, user) = agent(&t).await;
    let now = t0();

    let r = register(&t, tenant, user, &Req::new(&[("sip:a@h", Some(600))], "c1", 1, now)).await;
    assert!(r.allowed && r.changed, "a new binding is a change");
    assert_eq!(contacts(&r), [("sip:a@h".to_owned(), now + Duration::seconds(600))]);

    // A refresh (same Call-ID, higher CSeq) moves the expiry and is no change.
    let later = now + Duration::seconds(10);
    let r = register(&t, tenant, user, &Req::new(&[("sip:a@h", Some(600))], "c1", 2, later)).await;
    assert!(r.allowed && !r.changed, "a plain refresh is no change");
    assert_eq!(contacts(&r), [("sip:a@h".to_owned(), later + Duration::seconds(600))]);
    assert_eq!(r.bindings[0].cseq, 2);

    // Out of order (same Call-ID, CSeq not above): nothing written, the binding is listed as is.
    let r = register(&t, tenant, user, &Req::new(&[("sip:a@h", Some(60))], "c1", 2, later)).await;
    assert!(!r.changed);
    assert_eq!(contacts(&r), [("sip:a@h".to_owned(), later + Duration::seconds(600))]);

    // Another transport for the same contact is a change others see.
    let mut moved = Req::new(&[("sip:a@h", Some(600))], "c1", 3, later);
    moved.transport = "tcp";
    assert!(register(&t, tenant, user, &moved).await.changed);

    // A second device; a third is over the limit (2) and writes nothing.
    let r = register(&t, tenant, user, &Req::new(&[("sip:b@h", Some(600))], "c2", 1, later)).await;
    assert!(r.allowed && r.changed);
    assert_eq!(r.bindings.len(), 2);
    let r = register(&t, tenant, user, &Req::new(&[("sip:c@h", Some(600))], "c3", 1, later)).await;
    assert!(!r.allowed);
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    assert_eq!(sip::bindings(&mut tx, user, later).await.unwrap().len(), 2);
    tx.commit().await.unwrap();
    // Replacing one device by another in one request fits.
    let r =
        register(&t, tenant, user, &Req::new(&[("sip:b@h", None), ("sip:c@h", Some(600))], "c3", 2, later))
            .await;
    assert!(r.allowed && r.changed);
    assert_eq!(contacts(&r).into_iter().map(|c| c.0).collect::<Vec<_>>(), ["sip:a@h", "sip:c@h"]);

    // A query (no contacts) lists and changes nothing.
    let r = register(&t, tenant, user, &Req::new(&[], "c9", 1, later)).await;
    assert!(!r.changed);
    assert_eq!(r.bindings.len(), 2);

    // Past both expiries: the next request purges a (a change), and c, registered again after
    // its expiry, counts as new.
    let much_later = later + Duration::seconds(601);
    let r = register(&t, tenant, user, &Req::new(&[("sip:c@h", Some(600))], "c3", 3, much_later)).await;
    assert!(r.changed, "the purge of a is a change");
    assert_eq!(contacts(&r).into_iter().map(|c| c.0).collect::<Vec<_>>(), ["sip:c@h"]);

    // Contact: * removes everything.
    let mut all = Req::new(&[], "c3", 4, much_later);
    all.wildcard = true;
    let r = register(&t, tenant, user, &all).await;
    assert!(r.changed && r.bindings.is_empty());
    let r = register(&t, tenant, user, &all).await;
    assert!(!r.changed, "nothing left to remove");
}

#[tokio::test]
async fn refreshes_are_hot_updates() {
    let t = TestDb::new().await;
    let (tenant, user) = agent(&t).await;
    let now = t0();
    register(&t, tenant, user, &Req::new(&[("sip:a@h", Some(600))], "c1", 1, now)).await;
    // pg_stat_xact_* counts this transaction's own work, so other tests do not interfere.
    let contacts = [WantedBinding { contact: "sip:a@h".into(), expires_at: None, q: None }];
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    for i in 0..20 {
        let at = now + Duration::seconds(i + 1);
        let contacts =
            [WantedBinding { expires_at: Some(at + Duration::seconds(600)), ..contacts[0].clone() }];
        let r = sip::register(
            &mut tx,
            &Registration {
                tenant,
                user,
                wildcard: false,
                contacts: &contacts,
                call_id: "c1",
                cseq: 2 + i,
                transport: "udp",
                source: "192.0.2.7:5060",
                node_id: "n1",
                connection_id: None,
                user_agent: Some("phone"),
                max_bindings: 2,
                now: at,
            },
        )
        .await
        .unwrap();
        assert!(!r.changed);
    }
    let (updated, hot): (i64, i64) = sqlx::query_as(
        "select pg_stat_get_xact_tuples_updated('sip_registrations'::regclass),
                pg_stat_get_xact_tuples_hot_updated('sip_registrations'::regclass)",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(updated, 20);
    assert_eq!(hot, 20, "every refresh updated the row in place");
}

#[tokio::test]
async fn purge_and_connection_removal_name_the_agents_who_lost_a_binding() {
    let t = TestDb::new().await;
    let (tenant, user) = agent(&t).await;
    let now = t0();
    register(&t, tenant, user, &Req::new(&[("sip:a@h", Some(60))], "c1", 1, now)).await;
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    assert!(sip::purge_expired(&mut tx, now + Duration::seconds(59)).await.unwrap().is_empty());
    assert_eq!(sip::purge_expired(&mut tx, now + Duration::seconds(61)).await.unwrap(), [user.0]);
    assert!(sip::remove_connection_bindings(&mut tx, "n1", None).await.unwrap().is_empty());
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_new_sip_password_is_announced_when_it_commits() {
    let t = TestDb::new().await;
    let (tenant, user) = agent(&t).await;
    let mut listener = sqlx::postgres::PgListener::connect_with(t.db.pool()).await.unwrap();
    listener.listen(sip::ACCOUNTS_CHANNEL).await.unwrap();

    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    sip::set_password(&mut tx, user, "v1:rolled-back", Utc::now()).await.unwrap();
    tx.rollback().await.unwrap();
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    sip::set_password(&mut tx, user, "v1:new", Utc::now()).await.unwrap();
    tx.commit().await.unwrap();

    let n = tokio::time::timeout(std::time::Duration::from_secs(10), listener.recv()).await.unwrap().unwrap();
    assert_eq!(n.payload(), format!("{}:{}", tenant.as_uuid(), user.0));
    // Only the committed change was announced.
    let more = tokio::time::timeout(std::time::Duration::from_millis(300), listener.recv()).await;
    assert!(more.is_err(), "{more:?}");
    let mut tx = t.db.tenant_tx(tenant).await.unwrap();
    assert_eq!(sip::get_account(&mut tx, user).await.unwrap().unwrap().password_enc, "v1:new");
    tx.commit().await.unwrap();
}
