//! Tests of the verifier against a stand-in TrackVia: one call per distinct credential.

use futures::StreamExt;
use jiff::SignedDuration;

use super::*;
use crate::trackvia::{AnswerAtOnce, ask_as_a_connection as ask};

/// Calls made per token.
type Calls = Arc<Mutex<HashMap<String, u64>>>;

/// TrackVia accepting everything at once, counting its calls per token in `calls`.
fn accepting(calls: Calls) -> impl VerifyCall {
    AnswerAtOnce::new(move |creds: &Credentials| {
        *calls.lock().entry(creds.auth_token.clone()).or_default() += 1;
        VerificationOutcome::Verified { http_status: 200 }
    })
}

fn caller(i: usize) -> CallerId {
    CallerId {
        namespace: "ns".into(),
        name: format!("conn-{i}"),
        uid: format!("uid-{i}"),
    }
}

fn creds(token: &str) -> Credentials {
    Credentials {
        api_key: "key".into(),
        auth_token: token.into(),
    }
}

/// Connections sharing a credential make one call: those asking while it is
/// queued wait for it, and those whose pass began before its answer arrived
/// (their question is dated earlier than the answer) take the answer.
#[tokio::test]
async fn connections_sharing_a_credential_make_one_call() {
    let calls = Calls::default();
    let verifier = Arc::new(Verifier::new(accepting(calls.clone()), 60));
    let start = Timestamp::now();
    let answered_at = start + SignedDuration::from_secs(5);
    verifier.start(move || answered_at, |_| {});
    let mut wakeups = verifier.wakeups(None);
    let shared = creds("shared");

    // Three ask before the call is made: one call, three wake-ups.
    for i in 0..3 {
        assert!(matches!(
            ask(&verifier, &caller(i), &shared, start),
            Ask::Pending
        ));
    }
    let mut woken = Vec::new();
    while woken.len() < 3 {
        let (_, name) = tokio::time::timeout(Duration::from_secs(10), wakeups.next())
            .await
            .expect("a wake-up within 10 s")
            .expect("the verifier's wake-ups");
        woken.push(name);
    }
    woken.sort();
    assert_eq!(woken, ["conn-0", "conn-1", "conn-2"]);
    for i in 0..3 {
        assert!(matches!(
            ask(&verifier, &caller(i), &shared, start),
            Ask::Answer(_)
        ));
    }

    // A pass that began before the answer arrived asks once it is there: it is answered.
    let began = start + SignedDuration::from_secs(2);
    match ask(&verifier, &caller(3), &shared, began) {
        Ask::Answer(a) => assert_eq!(a.at, answered_at),
        other => panic!("a new call for an answer younger than the question: {other:?}"),
    }
    assert_eq!(calls.lock().get("shared"), Some(&1));
    assert_eq!(verifier.calls(), 1);
}

/// Past a token's date, an answer given before it will not do: the connection's
/// check is a call of its own, even for credentials another connection shares.
#[tokio::test]
async fn an_answer_from_before_a_date_does_not_answer_after_it() {
    let calls = Calls::default();
    let verifier = Arc::new(Verifier::new(accepting(calls.clone()), 60));
    let start = Timestamp::now();
    verifier.start(move || start, |_| {});
    let mut wakeups = verifier.wakeups(None);
    let shared = creds("shared");
    assert!(matches!(
        ask(&verifier, &caller(0), &shared, start),
        Ask::Pending
    ));
    tokio::time::timeout(Duration::from_secs(10), wakeups.next())
        .await
        .expect("a wake-up within 10 s");
    assert!(matches!(
        ask(&verifier, &caller(1), &shared, start),
        Ask::Answer(_)
    ));
    let expires = start + SignedDuration::from_secs(60);
    let later = expires + SignedDuration::from_secs(1);
    let past_the_date = |caller: &CallerId, not_before| {
        verifier.ask(&VerifyRequest {
            caller,
            host: "trackvia.example",
            account_id: None,
            creds: &shared,
            freshness: Freshness {
                not_before,
                ..Freshness::within(Duration::from_secs(3600))
            },
            now: later,
        })
    };
    assert!(matches!(past_the_date(&caller(2), None), Ask::Answer(_)));
    assert!(matches!(
        past_the_date(&caller(3), Some(expires)),
        Ask::Pending
    ));
}
