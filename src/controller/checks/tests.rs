use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc::UnboundedReceiver;
use kube::runtime::reflector::ObjectRef;
use tokio::time::Instant;

use super::{Checks, Table};
use crate::controller::key::Key;
use crate::crd::TrackViaConnection;

fn key(ns: &str, name: &str) -> Key {
    Key::new(Some(ns), name)
}

#[test]
fn a_later_answer_replaces_the_earlier_check() {
    let now = Instant::now();
    let mut table = Table::default();
    assert!(table.set(key("a", "one"), now + Duration::from_secs(60)));
    assert!(table.set(key("a", "two"), now + Duration::from_secs(30)));
    // Later than the earliest: not the earliest.
    assert!(!table.set(key("a", "one"), now + Duration::from_secs(90)));
    assert_eq!(table.len(), 2);
    assert_eq!(
        table.at(&key("a", "one")),
        Some(now + Duration::from_secs(90))
    );
    // Moved before the earliest.
    assert!(table.set(key("a", "one"), now + Duration::from_secs(10)));
    assert_eq!(table.earliest(), Some(now + Duration::from_secs(10)));
    assert_eq!(table.len(), 2, "one check per connection");
}

#[test]
fn due_checks_are_taken_once_in_order() {
    let now = Instant::now();
    let mut table = Table::default();
    table.set(key("a", "late"), now + Duration::from_secs(20));
    table.set(key("a", "early"), now + Duration::from_secs(5));
    table.set(key("b", "later"), now + Duration::from_secs(60));
    table.forget(&key("b", "later"));
    assert_eq!(table.take_due(now), Vec::<Key>::new());
    assert_eq!(
        table.take_due(now + Duration::from_secs(20)),
        vec![key("a", "early"), key("a", "late")]
    );
    assert!(table.is_empty());
    assert_eq!(table.earliest(), None);
    assert_eq!(
        table.take_due(now + Duration::from_secs(3600)),
        Vec::<Key>::new()
    );
}

/// The next connection sent to `due`, while the checks run.
async fn next_due(
    running: &mut Pin<&mut impl Future<Output = ()>>,
    due: &mut UnboundedReceiver<ObjectRef<TrackViaConnection>>,
) -> ObjectRef<TrackViaConnection> {
    tokio::select! {
        () = running.as_mut() => unreachable!("the checks run until dropped"),
        woken = due.next() => woken.expect("a check"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_due_check_reaches_its_scope_only() {
    let checks = Checks::default();
    let mut a = checks.due(Some("a"));
    let mut b = checks.due(Some("b"));
    checks.after(key("a", "one"), Some(Duration::from_secs(30)));
    checks.after(key("a", "two"), Some(Duration::from_secs(10)));
    // No check at all any more.
    checks.after(key("a", "two"), None);
    checks.after(key("b", "gone"), Some(Duration::from_secs(5)));
    checks.forget(&key("b", "gone"));
    let started = Instant::now();
    let running = checks.run();
    tokio::pin!(running);
    let first = next_due(&mut running, &mut a).await;
    assert_eq!(
        (first.namespace.as_deref(), first.name.as_str()),
        (Some("a"), "one")
    );
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    assert!(checks.is_empty());
    // A check set while the task sleeps with nothing pending wakes it.
    checks.after(key("b", "late"), Some(Duration::from_secs(3)));
    let second = next_due(&mut running, &mut b).await;
    assert_eq!(second.name, "late");
    assert_eq!(started.elapsed(), Duration::from_secs(33));
    assert!(a.try_recv().is_err(), "nothing more for scope a");
}

#[tokio::test(start_paused = true)]
async fn an_earlier_check_wakes_the_task_sleeping_on_a_later_one() {
    let checks = Checks::default();
    let mut due = checks.due(None);
    checks.after(key("a", "late"), Some(Duration::from_secs(60)));
    let started = Instant::now();
    let running = checks.run();
    tokio::pin!(running);
    // The task sleeps until the late check.
    let nothing = tokio::time::timeout(Duration::from_secs(1), &mut running).await;
    assert!(nothing.is_err(), "the checks run until dropped");
    checks.after(key("a", "soon"), Some(Duration::from_secs(5)));
    let first = next_due(&mut running, &mut due).await;
    assert_eq!(first.name, "soon");
    assert_eq!(started.elapsed(), Duration::from_secs(6));
}

#[test]
fn a_check_beyond_any_instant_is_kept_as_never() {
    let checks = Checks::default();
    checks.after(key("a", "far"), Some(Duration::MAX));
    assert!(
        checks
            .at(&key("a", "far"))
            .is_some_and(|at| at > Instant::now())
    );
}
