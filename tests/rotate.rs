//! `kubectl trackvia rotate NAME` against the real operator and the fake TrackVia
//! on the test bed: an accepted token is written and published; a refused token,
//! a wrong key name, a missing Secret, a user without `patch` on Secrets and a bad
//! date change nothing; a connection no operator watches ends in a timeout. No
//! output ever holds a credential.

mod common;

use std::path::Path;
use std::time::Duration;

use common::cli::{impersonating_kubeconfig, run_cli_input};
use common::{Harness, OPERATOR, secret_text, secret_value};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use trackvia_operator::crd::TrackViaConnection;
use trackvia_testsupport::fake::Behavior;
use trackvia_testsupport::kube::TestNamespace;
use trackvia_testsupport::time::assert_within;

/// Run `status rotate` in namespace `ns` with `token` on standard input; every
/// credential of the harness is checked to be absent from the output.
fn rotate(h: &Harness, ns: &str, args: &[&str], token: &str) -> (i32, String, String) {
    let host = h.fake.host();
    let ca = h.fake.ca_file().display().to_string();
    let mut all = vec!["status", "rotate", "-n", ns, "--allowed-hosts", &host];
    all.extend(["--extra-ca-file", &ca]);
    all.extend(args);
    let input = format!("{token}\n");
    let (code, out, err) = run_cli_input(Path::new(OPERATOR), &all, &[], Some(&input));
    for secret in h.secrets.iter().map(String::as_str).chain([token]) {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "a credential appears in the output of rotate {args:?}"
        );
    }
    (code, out, err)
}

/// A token the fake answers with `b` for `key`, audited for leaks.
fn token(h: &mut Harness, key: &str, b: Behavior) -> String {
    let token = secret_value("t");
    h.fake.set(key, &token, b);
    h.secrets.push(token.clone());
    token
}

/// The source Secret as stored (every byte, resourceVersion included) and what
/// a user writes of the connection (spec, annotations, managers).
async fn snapshot(h: &Harness, connection: &str, secret: &str) -> (String, Value) {
    let s: Secret = h.secrets_api().get(secret).await.expect("the Secret");
    let t = h
        .connections()
        .get(connection)
        .await
        .expect("the connection");
    let managers: Vec<_> = t
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.subresource.is_none())
        .map(|m| (m.manager.clone(), m.fields_v1.clone()))
        .collect();
    let tvc = json!({"spec": t.spec, "generation": t.metadata.generation,
                     "annotations": t.metadata.annotations, "managers": managers});
    (serde_json::to_string(&s).expect("JSON"), tvc)
}

fn manager_applied(
    managed: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry>>,
) -> bool {
    managed.into_iter().flatten().any(|m| {
        m.manager.as_deref() == Some("kubectl-trackvia") && m.operation.as_deref() == Some("Apply")
    })
}

/// An operator with connection `crm` (`spec` over the harness's defaults) Ready
/// on a valid token in Secret `src`: the harness, its namespace and the API key.
async fn ready_crm(prefix: &str, spec: Value) -> (Harness, String, String) {
    let mut h = Harness::start(prefix, &["--request-timeout", "10s"]).await;
    let ns = h.ns.name().to_string();
    let (key, old) = h.credential(Behavior::Valid);
    h.put_source("src", &key, &old).await;
    h.apply_connection("crm", "src", spec)
        .await
        .expect("applying");
    h.wait_ready("crm", "True", "Verified").await;
    (h, ns, key)
}

// The fake TrackVia runs in the test's runtime: the command, run blocking here,
// must leave it a thread to answer on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_token_is_written_and_published_in_one_step() {
    let spec = json!({"target": {"name": "crm-out"}, "tokenName": "ci-old", "tokenExpiresOn": "2099-01-01"});
    let (mut h, ns, key) = ready_crm("cli-rotate", spec).await;

    let new = token(&mut h, &key, Behavior::Valid);
    let args = [
        "crm",
        "--expires-on",
        "2098-06-01",
        "--token-name",
        "ci-new",
    ];
    let (code, out, err) = rotate(&h, &ns, &args, &new);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(
        out,
        format!(
            "Secret {ns}/src: key authToken holds the new token\n\
             TrackViaConnection crm: tokenExpiresOn 2099-01-01 -> 2098-06-01, tokenName \"ci-old\" -> \"ci-new\"\n\
             Verified by TrackVia and published to Secret crm-out\n\
             Reminder: delete the old token \"ci-old\" (expiring on 2099-01-01) in TrackVia (gear icon, Deactivate, then delete) once the workloads use the new one; until then it still works.\n"
        ),
        "{err}"
    );
    assert!(
        err.contains("Verified: TrackVia accepted the credentials"),
        "{err}"
    );
    // When the command returns, all of it is done: nothing is waited for here.
    let source = h.secrets_api().get("src").await.expect("the source");
    assert_eq!(
        secret_text(&source, "authToken").as_deref(),
        Some(new.as_str())
    );
    assert_eq!(
        secret_text(&source, "apiKey").as_deref(),
        Some(key.as_str())
    );
    assert!(manager_applied(source.metadata.managed_fields.as_ref()));
    let published = h.secrets_api().get("crm-out").await.expect("the output");
    assert_eq!(
        secret_text(&published, "authToken").as_deref(),
        Some(new.as_str())
    );
    let tvc = h.connections().get("crm").await.expect("the connection");
    assert_eq!(tvc.spec.token_expires_on.as_deref(), Some("2098-06-01"));
    assert_eq!(tvc.spec.token_name.as_deref(), Some("ci-new"));
    assert!(manager_applied(tvc.metadata.managed_fields.as_ref()));
    let forced = tvc.metadata.annotations.as_ref();
    assert!(
        forced.is_some_and(|a| a.contains_key("trackvia.io/verify-requested-at")),
        "a check was forced: {forced:?}"
    );
    let status = tvc.status.expect("a status");
    assert_eq!(status.verified_fingerprint, status.credentials_fingerprint);

    // A second rotation without --token-name keeps the name this command set.
    let newer = token(&mut h, &key, Behavior::Valid);
    let (code, out, err) = rotate(&h, &ns, &["crm", "--expires-on", "2098-07-01"], &newer);
    assert_eq!(code, 0, "{out}\n{err}");
    let tvc = h.connections().get("crm").await.expect("the connection");
    assert_eq!(tvc.spec.token_expires_on.as_deref(), Some("2098-07-01"));
    assert_eq!(tvc.spec.token_name.as_deref(), Some("ci-new"));
    let published = h.secrets_api().get("crm-out").await.expect("the output");
    assert_eq!(
        secret_text(&published, "authToken").as_deref(),
        Some(newer.as_str())
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tokens_wrong_keys_missing_rights_and_bad_dates_write_nothing() {
    let spec = json!({"tokenName": "ci-old", "tokenExpiresOn": "2099-01-01"});
    let (mut h, ns, key) = ready_crm("cli-rotate-no", spec).await;
    let before = snapshot(&h, "crm", "src").await;
    let date = ["--expires-on", "2098-06-01"];

    // TrackVia refuses: the exit code of `verify`, and not one byte changes.
    for (behavior, code, word) in [
        (Behavior::Revoked, 2, "Unauthorized"),
        (Behavior::Expired, 3, "Expired"),
    ] {
        let refused = token(&mut h, &key, behavior);
        let (got, out, err) = rotate(&h, &ns, &["crm", date[0], date[1]], &refused);
        assert_eq!(got, code, "{out}\n{err}");
        assert!(
            err.contains(&format!("TrackVia refused the new token: {word}")),
            "{err}"
        );
        assert!(err.contains("Nothing was written"), "{err}");
        assert!(out.is_empty(), "{out}");
        assert_eq!(snapshot(&h, "crm", "src").await, before, "{word}");
    }

    let new = token(&mut h, &key, Behavior::Valid);
    unusable_keys_tokens_and_secrets(&h, &ns, &new, &before).await;

    // A user who may read both but not patch Secrets: refused before TrackVia is asked.
    let user = user_who_may_not_patch_secrets(&h).await;
    let kubeconfig = impersonating_kubeconfig(&user);
    let kubeconfig_flag = kubeconfig.display().to_string();
    let args = ["crm", date[0], date[1], "--kubeconfig", &kubeconfig_flag];
    let (code, _, err) = rotate(&h, &ns, &args, &new);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("not allowed to patch Secret") && err.contains("\"patch\" verb on secrets"),
        "{err}"
    );
    assert!(err.contains("Nothing was written"), "{err}");
    let _ = std::fs::remove_file(&kubeconfig);

    // Dates: not a calendar date, and a date already past.
    let (code, _, err) = rotate(&h, &ns, &["crm", "--expires-on", "2098-02-30"], &new);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--expires-on"), "{err}");
    let (code, _, err) = rotate(&h, &ns, &["crm", "--expires-on", "2001-01-01"], &new);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not after today"), "{err}");

    assert_eq!(h.fake.calls_for(&key, &new), 0, "TrackVia was never asked");
    assert_eq!(snapshot(&h, "crm", "src").await, before);
    h.finish().await;
}

/// The spec names a key the Secret lacks; the new token could never work; the Secret is
/// missing: each named, nothing written.
async fn unusable_keys_tokens_and_secrets(
    h: &Harness,
    ns: &str,
    new: &str,
    before: &(String, Value),
) {
    let date = ["--expires-on", "2098-06-01"];
    let wrong = json!({"credentialsSecretRef": {"authTokenKey": "token"}});
    h.apply_connection("wrongkey", "src", wrong)
        .await
        .expect("applying");
    let (code, _, err) = rotate(h, ns, &["wrongkey", date[0], date[1]], new);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("error: Secret {ns}/src has no key \"token\""))
            && err.contains("apiKey, authToken"),
        "{err}"
    );
    // A new token TrackVia could never accept: named by its Secret, nothing written.
    let (code, _, err) = rotate(h, ns, &["crm", date[0], date[1]], "two words");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "error: Secret {ns}/src with the new token key \"authToken\" contains whitespace"
        )),
        "{err}"
    );
    assert_eq!(snapshot(h, "crm", "src").await, *before);
    h.apply_connection("nosecret", "gone", json!({}))
        .await
        .expect("applying");
    let (code, _, err) = rotate(h, ns, &["nosecret", date[0], date[1]], new);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("Secret {ns}/gone")) && err.contains("not found"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_operator_the_written_rotation_times_out() {
    let mut h = Harness::start("cli-rotate-wait", &[]).await;
    let (key, old) = h.credential(Behavior::Valid);
    let new = token(&mut h, &key, Behavior::Valid);
    let alone = TestNamespace::create(&h.client, "cli-rotate-alone").await;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "src"}, "stringData": {"apiKey": key, "authToken": old},
    }))
    .expect("a Secret");
    let pp = PostParams::default();
    alone
        .api::<Secret>()
        .create(&pp, &secret)
        .await
        .expect("the Secret");
    let tvc: TrackViaConnection = serde_json::from_value(json!({
        "apiVersion": "trackvia.io/v1alpha1", "kind": "TrackViaConnection",
        "metadata": {"name": "alone"},
        "spec": {"host": h.fake.host(), "credentialsSecretRef": {"name": "src"}},
    }))
    .expect("a connection");
    let connections: Api<TrackViaConnection> = alone.api();
    connections.create(&pp, &tvc).await.expect("the connection");

    let args = ["alone", "--expires-on", "2098-06-01", "--timeout", "3s"];
    let started = std::time::Instant::now();
    let (code, out, err) = rotate(&h, alone.name(), &args, &new);
    assert_eq!(code, 6, "{out}\n{err}");
    assert_within(started, Duration::from_secs(30));
    assert!(
        err.contains("written") && err.contains("within 3s"),
        "{err}"
    );
    let source = alone.api::<Secret>().get("src").await.expect("the Secret");
    assert_eq!(
        secret_text(&source, "authToken").as_deref(),
        Some(new.as_str())
    );
    alone.cleanup().await;
    h.finish().await;
}

/// A user bound in the test namespace to read connections and Secrets, but not patch Secrets.
async fn user_who_may_not_patch_secrets(h: &Harness) -> String {
    let user = format!("rotator-{}", &secret_value("")[..8]);
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "rotator"},
        "rules": [
            {"apiGroups": ["trackvia.io"], "resources": ["trackviaconnections"],
             "verbs": ["get", "list", "watch", "patch"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
        ],
    }))
    .expect("a Role");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "rotator"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "rotator"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }))
    .expect("a RoleBinding");
    let pp = PostParams::default();
    h.ns.api::<Role>()
        .create(&pp, &role)
        .await
        .expect("the Role");
    h.ns.api::<RoleBinding>()
        .create(&pp, &binding)
        .await
        .expect("the binding");
    user
}
