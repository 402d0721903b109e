use super::*;

fn key(ns: &str, name: &str) -> SecretKey {
    (ns.to_string(), name.to_string())
}

/// What a pass finds in memory, without the version.
fn cached(s: &Sources, k: &SecretKey, api_key: &str, token: &str) -> Option<CredentialsRead> {
    s.cached(k, api_key, token).map(|(_, read)| read)
}

fn creds(token: &str) -> Credentials {
    Credentials {
        api_key: "k".into(),
        auth_token: token.into(),
    }
}

#[test]
fn credentials_are_kept_only_while_the_watch_reports_the_same_version() {
    let s = Sources::default();
    let k = key("a", "src");
    s.set_referenced(None, HashSet::from([k.clone()]));
    // Not reported by a watch yet: served to other passes for a few seconds.
    s.remember(&k, "apiKey", "authToken", "5".into(), Ok(creds("one")));
    assert_eq!(
        cached(&s, &k, "apiKey", "authToken"),
        Some(Ok(creds("one")))
    );
    let later = Instant::now() + UNWATCHED_READ_SERVED_FOR;
    assert!(s.cached_at(&k, "apiKey", "authToken", later).is_none());
    // The first report: readers look again, and what was read at 5 answers them.
    assert!(s.observe(&k, Some("5".into())));
    assert_eq!(
        cached(&s, &k, "apiKey", "authToken"),
        Some(Ok(creds("one")))
    );
    // Another key pair of the same Secret is a different read.
    assert!(cached(&s, &k, "key", "token").is_none());
    // The same version again (a relist) changes nothing.
    assert!(!s.observe(&k, Some("5".into())));
    assert_eq!(
        cached(&s, &k, "apiKey", "authToken"),
        Some(Ok(creds("one")))
    );
    // A new version invalidates.
    assert!(s.observe(&k, Some("6".into())));
    assert!(cached(&s, &k, "apiKey", "authToken").is_none());
    assert_eq!(s.kept(), 0, "nothing is kept for the Secret");
    assert_eq!(s.seen_version(&k).as_deref(), Some("6"));
    // A read that raced the watch and returned the old version is not served.
    s.remember(&k, "apiKey", "authToken", "5".into(), Ok(creds("one")));
    assert!(cached(&s, &k, "apiKey", "authToken").is_none());
    // Deleted: nothing served, and the change is reported once.
    s.remember(&k, "apiKey", "authToken", "6".into(), Ok(creds("two")));
    assert!(s.observe(&k, None));
    assert!(!s.observe(&k, None));
    assert!(cached(&s, &k, "apiKey", "authToken").is_none());
    assert_eq!(s.seen_version(&k), None);
}

#[test]
fn a_read_no_watch_reports_is_dropped_once_it_can_no_longer_be_served() {
    let s = Sources::default();
    let (gone, other) = (key("a", "gone"), key("a", "other"));
    let pair = || ("apiKey".to_string(), "authToken".to_string());
    // A pass's read that ended after its Secret's last reader went: nothing
    // references it, and no re-plan will come to drop it.
    s.set_referenced(None, HashSet::from([other.clone()]));
    let start = Instant::now();
    s.remember_at(&gone, pair(), "1".into(), Ok(creds("one")), start);
    s.remember_at(&other, pair(), "1".into(), Ok(creds("one")), start);
    assert_eq!(s.kept(), 2, "both served for a while");
    assert!(s.observe(&other, Some("1".into())));
    let later = start + UNWATCHED_READ_SERVED_FOR;
    s.remember_at(
        &key("a", "new"),
        pair(),
        "1".into(),
        Ok(creds("two")),
        later,
    );
    assert!(s.cached_at(&other, "apiKey", "authToken", later).is_some());
    assert_eq!(s.kept(), 2, "the read of the Secret nobody reads is gone");
}

#[test]
fn a_first_report_from_a_read_of_the_metadata_does_not_override_the_watch() {
    let s = Sources::default();
    let (a, b) = (key("a", "one"), key("a", "two"));
    // What is read for the first time is told, once, with the plan that made it read.
    let (new, since) = s.set_referenced(None, HashSet::from([a.clone()]));
    assert_eq!(new, vec![a.clone()]);
    assert_eq!(s.set_referenced(None, HashSet::from([a.clone()])).0, vec![]);
    // Not read by any connection: nothing recorded.
    assert!(!s.observe_first(&b, since, Some("1".into())));
    assert_eq!(s.seen_version(&b), None);
    // Read by one, not reported yet: the first report, readers look again.
    s.remember(&a, "apiKey", "authToken", "4".into(), Ok(creds("t")));
    assert!(s.observe_first(&a, since, Some("4".into())));
    assert_eq!(s.seen_version(&a), Some("4".into()));
    assert!(cached(&s, &a, "apiKey", "authToken").is_some());
    // The watch reported a newer version meanwhile: an older read does not go back.
    assert!(s.observe(&a, Some("5".into())));
    assert!(!s.observe_first(&a, since, Some("4".into())));
    assert_eq!(s.seen_version(&a), Some("5".into()));
}

#[test]
fn a_first_report_read_before_a_break_in_the_reading_is_dropped() {
    let s = Sources::default();
    let a = key("a", "one");
    let (_, first) = s.set_referenced(None, HashSet::from([a.clone()]));
    // Nobody reads it for a while (a change then goes unreported), then again.
    s.set_referenced(None, HashSet::new());
    let (new, again) = s.set_referenced(None, HashSet::from([a.clone()]));
    assert_eq!(new, vec![a.clone()]);
    // The metadata read asked for by the first plan lands late: it may be older.
    assert!(!s.observe_first(&a, first, Some("1".into())));
    assert_eq!(s.seen_version(&a), None);
    assert!(s.observe_first(&a, again, Some("2".into())));
    assert_eq!(s.seen_version(&a), Some("2".into()));
}

#[test]
fn a_first_report_always_asks_readers_to_look_again() {
    let s = Sources::default();
    let (a, b, c) = (key("a", "one"), key("a", "two"), key("a", "three"));
    s.set_referenced(None, HashSet::from([a.clone(), b.clone(), c.clone()]));
    // Nobody read it yet.
    assert!(s.observe(&a, Some("1".into())));
    // Read at an older version before the watch started: not served.
    s.remember(&b, "apiKey", "authToken", "1".into(), Ok(creds("old")));
    assert!(s.observe(&b, Some("2".into())));
    assert!(cached(&s, &b, "apiKey", "authToken").is_none());
    // Found missing before the watch started, created since.
    s.remember(
        &c,
        "apiKey",
        "authToken",
        String::new(),
        Err(CredentialsError::SecretNotFound {
            namespace: "a".into(),
            secret: "three".into(),
        }),
    );
    assert!(s.observe(&c, Some("3".into())));
    assert!(cached(&s, &c, "apiKey", "authToken").is_none());
}

#[test]
fn unreferenced_secrets_are_neither_tracked_nor_kept() {
    let s = Sources::default();
    let k = key("a", "src");
    let other = key("a", "unrelated");
    s.set_referenced(None, HashSet::from([k.clone()]));
    assert!(!s.observe(&other, Some("1".into())));
    // Read for a new connection before the watches are re-planned: kept
    // until a re-plan finds it unreferenced.
    s.remember(&other, "apiKey", "authToken", "1".into(), Ok(creds("x")));
    assert_eq!(s.kept(), 1);
    s.set_referenced(None, HashSet::from([k.clone()]));
    assert_eq!(s.kept(), 0);
    assert!(s.observe(&k, Some("2".into())));
    s.remember(&k, "apiKey", "authToken", "2".into(), Ok(creds("y")));
    assert_eq!(s.kept(), 1);
    // Another scope's references leave this one's alone.
    s.set_referenced(Some("b"), HashSet::from([key("b", "src")]));
    assert_eq!(s.kept(), 1);
    assert!(s.is_referenced(&k) && s.is_referenced(&key("b", "src")));
    // No longer referenced in its scope: forgotten.
    s.set_referenced(Some("a"), HashSet::new());
    assert_eq!(s.kept(), 0);
    assert!(cached(&s, &k, "apiKey", "authToken").is_none());
    assert!(!s.is_referenced(&k));
}

#[tokio::test(start_paused = true)]
async fn passes_read_a_secret_one_at_a_time() {
    let s = Sources::default();
    let (k, other) = (key("a", "src"), key("a", "other"));
    let mut first = s.read_turn(&k).await;
    assert!(!first.after_an_unshared_read());
    // Another Secret is read at the same time.
    drop(s.read_turn(&other).await);
    let second = s.read_turn(&k);
    tokio::pin!(second);
    let waited = tokio::time::timeout(Duration::from_secs(1), &mut second).await;
    assert!(
        waited.is_err(),
        "the second read of a Secret waits for the first"
    );
    assert_eq!(s.being_read(), 1);
    // The first read fails: the next pass learns it, and does not hold the others up.
    first.not_shared();
    drop(first);
    let mut second = second.await;
    assert!(second.after_an_unshared_read());
    second.release();
    let third = tokio::time::timeout(Duration::from_secs(1), s.read_turn(&k)).await;
    assert!(
        third.is_ok(),
        "after a failure, waiting passes read at once"
    );
    drop((second, third));
    assert_eq!(s.being_read(), 0, "nothing kept once nobody reads");
    // A fresh turn does not carry the failure over.
    assert!(!s.read_turn(&k).await.after_an_unshared_read());
}

#[tokio::test(start_paused = true)]
async fn a_pass_cancelled_while_waiting_leaves_nothing_behind() {
    let s = Sources::default();
    let k = key("a", "src");
    let first = s.read_turn(&k).await;
    let mut waiting = Box::pin(s.read_turn(&k));
    let waited = tokio::time::timeout(Duration::from_secs(1), &mut waiting).await;
    assert!(waited.is_err());
    // Its turn comes, but the pass is cancelled before it takes it.
    drop(first);
    drop(waiting);
    // The next turn given back, of any Secret, clears what nobody waits for.
    drop(s.read_turn(&key("a", "other")).await);
    assert_eq!(s.being_read(), 0);
}

#[tokio::test]
async fn a_pass_waits_for_the_first_report_only_in_the_watches_first_seconds() {
    let s = Arc::new(Sources::default());
    let (k, other) = (key("a", "src"), key("a", "gone"));
    s.set_referenced(None, HashSet::from([k.clone(), other.clone()]));
    // Reported already: at once, deleted ones too.
    s.observe(&other, None);
    assert_eq!(s.reported(&other).await, Some(None));
    // Not yet: the pass waits for the report.
    let waiting = tokio::spawn({
        let s = s.clone();
        let k = k.clone();
        async move { s.reported(&k).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "answered before any report");
    s.observe(&k, Some("7".into()));
    let reported = tokio::time::timeout(Duration::from_secs(1), waiting).await;
    assert_eq!(
        reported.expect("woken").expect("joined"),
        Some(Some("7".into()))
    );
    // Past the first seconds of the watches, nobody waits for a report.
    s.inner.lock().since -= FIRST_REPORT_WAIT;
    let late = key("a", "late");
    s.set_referenced(None, HashSet::from([late.clone()]));
    let at_once = tokio::time::timeout(Duration::from_secs(1), s.reported(&late)).await;
    assert_eq!(at_once, Ok(None));
}

#[tokio::test]
async fn the_wait_starts_again_when_the_first_secret_is_referenced() {
    let s = Sources::default();
    let k = key("a", "src");
    // Started leading long ago, no Secret referenced yet.
    s.inner.lock().since -= FIRST_REPORT_WAIT;
    assert_eq!(s.reported(&k).await, None);
    s.set_referenced(None, HashSet::from([k.clone()]));
    let waited = tokio::time::timeout(Duration::from_millis(100), s.reported(&k)).await;
    assert!(
        waited.is_err(),
        "the watches were just planned: wait for their report"
    );
}
