//! Malformed or malicious connections and source Secrets on the real bed. Each is refused by
//! the API server with a message naming the field, or ends in a specific condition; valid
//! connections stay served by the same process and no other Secret is touched.
//!
//! Kubernetes 1.20 enforces the OpenAPI part of the schema (pattern, enum, type, bounds) but
//! not the CEL rules: what only CEL catches must be refused by the operator itself.

mod common;

use common::hostile::*;
use common::{Harness, SETTLE, condition_parts};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::json;
use trackvia_operator::crd::TrackViaConnection;
use trackvia_testsupport::fake::Behavior;
use trackvia_testsupport::fixtures::merged;
use trackvia_testsupport::kube::{TestNamespace, wait_for};

/// The ServiceAccount token Secret some cases name.
const SA_TOKEN: &str = "robot-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_connections_are_refused_and_valid_ones_keep_working() {
    let mut h = Harness::start("tvc-hostile-in", &[]).await;
    let (key, _token) = h.connect("before", "src", Behavior::Valid, json!({})).await;
    h.wait_ready("before", "True", "Verified").await;
    let before_secret = h.secrets_api().get("before").await.expect("output Secret");
    let source_before = h.secrets_api().get("src").await.expect("source Secret");
    unusable_sources(&mut h, &key).await;
    let elsewhere = a_source_elsewhere(&mut h).await;
    let sa_secret = a_service_account_token(&h).await;

    let cases = hostile_cases(h.fake.port(), elsewhere.name(), SA_TOKEN);
    // Apply everything first, then check: the operator works through the batch
    // while valid connections stay served.
    let (accepted, refused) = apply_all(&h, &cases).await;
    let report = each_reaches_its_condition(&h, &accepted).await;
    eprintln!(
        "{refused} refused by the API server; operator-side outcomes:\n  {}",
        report.join("\n  ")
    );
    assert!(cases.len() >= 30);
    the_namespace_field_was_pruned(&h, &accepted).await;
    nothing_named_was_touched(&h, &sa_secret, &source_before, &before_secret).await;

    // Valid connections are still served, old and new, by the same process.
    h.wait_ready("before", "True", "Verified").await;
    h.connect("after", "src-after", Behavior::Valid, json!({}))
        .await;
    h.wait_ready("after", "True", "Verified").await;
    assert!(
        h.operator.is_running(),
        "the operator exited:\n{}",
        h.operator.logs()
    );
    elsewhere.cleanup().await;
    h.finish().await;
}

/// Source Secrets that are present but unusable, all with the valid key `key`.
async fn unusable_sources(h: &mut Harness, key: &str) {
    let secrets = h.secrets_api();
    let k = key.as_bytes().to_vec();
    raw_secret(
        &secrets,
        "src-empty",
        &[("apiKey", k.clone()), ("authToken", Vec::new())],
    )
    .await;
    raw_secret(
        &secrets,
        "src-space",
        &[("apiKey", k.clone()), ("authToken", b"abc def".to_vec())],
    )
    .await;
    raw_secret(
        &secrets,
        "src-binary",
        &[
            ("apiKey", k.clone()),
            ("authToken", vec![0xff, 0xfe, 0x00, 0x41]),
        ],
    )
    .await;
    let unicode = format!("tök\u{e9}n-\u{1f511}-{}", common::secret_value(""));
    h.secrets.push(unicode.clone());
    raw_secret(
        &secrets,
        "src-unicode",
        &[
            ("apiKey", k.clone()),
            ("authToken", unicode.clone().into_bytes()),
        ],
    )
    .await;
    let huge = common::secret_value("t").repeat(24_000);
    h.secrets.push(huge.clone());
    raw_secret(
        &secrets,
        "src-huge",
        &[("apiKey", k.clone()), ("authToken", huge.into_bytes())],
    )
    .await;
}

/// A valid source Secret in another namespace.
async fn a_source_elsewhere(h: &mut Harness) -> TestNamespace {
    let elsewhere = TestNamespace::create(&h.client, "tvc-elsewhere").await;
    let (other_key, other_token) = h.credential(Behavior::Valid);
    raw_secret(
        &elsewhere.api(),
        "src-elsewhere",
        &[
            ("apiKey", other_key.into_bytes()),
            ("authToken", other_token.into_bytes()),
        ],
    )
    .await;
    elsewhere
}

/// A ServiceAccount token Secret, filled in by the bed's controller-manager.
async fn a_service_account_token(h: &Harness) -> Secret {
    let sa: Api<ServiceAccount> = h.ns.api();
    sa.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "robot"}})).unwrap(),
    )
    .await
    .expect("creating a ServiceAccount");
    let token_secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": SA_TOKEN, "annotations": {"kubernetes.io/service-account.name": "robot"}},
        "type": "kubernetes.io/service-account-token",
    }))
    .unwrap();
    let secrets = h.secrets_api();
    secrets
        .create(&PostParams::default(), &token_secret)
        .await
        .expect("creating a service-account-token Secret");
    wait_for(
        &secrets,
        SA_TOKEN,
        SETTLE,
        "the token controller to fill the Secret",
        |s: &Secret| s.data.as_ref().is_some_and(|d| d.contains_key("token")),
    )
    .await
}

/// Each case as connection `h-NN`: the API server refuses it naming the field, or accepts it.
/// The accepted ones by name, and how many were refused.
async fn apply_all<'a>(h: &Harness, cases: &'a [Case]) -> (Vec<(String, &'a Case)>, usize) {
    let base = json!({"host": h.fake.host(), "credentialsSecretRef": {"name": "src"}});
    let mut accepted = Vec::new();
    let mut refused = 0;
    for (i, c) in cases.iter().enumerate() {
        let name = format!("h-{i:02}");
        let spec = merged(base.clone(), &c.spec);
        let result = if c.create {
            create_spec(h, &name, spec).await
        } else {
            h.apply_spec(&name, spec).await
        };
        match (c.expect, result) {
            (Expect::Refused(field), Err(e)) => {
                let text = e.to_string();
                assert!(
                    text.contains(field),
                    "{}: the refusal does not name {field}: {text}",
                    c.what
                );
                refused += 1;
            }
            (Expect::Refused(field), Ok(_)) => {
                panic!(
                    "{}: the API server accepted it (expected a refusal naming {field})",
                    c.what
                )
            }
            (_, Err(e)) => panic!("{}: the API server refused it: {e}", c.what),
            (_, Ok(_)) => accepted.push((name, c)),
        }
    }
    (accepted, refused)
}

/// Each accepted connection ends Ready=False with its reason and text; a line for each.
async fn each_reaches_its_condition(h: &Harness, accepted: &[(String, &Case)]) -> Vec<String> {
    let mut report = Vec::new();
    for (name, c) in accepted {
        wait_observed(h, name).await;
        let t = match c.expect {
            Expect::NotReady(reason, text) => {
                let t = h
                    .wait_connection(name, &format!("{}: Ready=False/{reason}", c.what), |t| {
                        condition_parts(t, "Ready")
                            .is_some_and(|(s, r, _)| s == "False" && r == reason)
                    })
                    .await;
                let (_, _, message) = condition_parts(&t, "Ready").unwrap();
                assert!(
                    message.contains(text),
                    "{}: Ready's message {message:?} does not mention {text:?}",
                    c.what
                );
                t
            }
            Expect::Refused(_) => unreachable!(),
        };
        report.push(format!(
            "{:<40} Ready={:?}",
            c.what,
            condition_parts(&t, "Ready").map(|(s, r, _)| (s, r))
        ));
    }
    report
}

/// The namespace field was pruned: the connection reads from its own namespace.
async fn the_namespace_field_was_pruned(h: &Harness, accepted: &[(String, &Case)]) {
    let pruned_name = &accepted
        .iter()
        .find(|(_, c)| c.what.starts_with("a namespace field"))
        .expect("the case")
        .0;
    let raw: Api<DynamicObject> = Api::namespaced_with(
        h.client.clone(),
        h.ns.name(),
        &ApiResource::erase::<TrackViaConnection>(&()),
    );
    let stored =
        raw.get(pruned_name).await.expect("reading").data["spec"]["credentialsSecretRef"].clone();
    assert!(
        stored.get("namespace").is_none(),
        "the unknown field was kept: {stored}"
    );
}

/// Nothing the hostile batch named was touched: the ServiceAccount token Secret, the source
/// Secret and another connection's Secret are as they were.
async fn nothing_named_was_touched(
    h: &Harness,
    sa_secret: &Secret,
    source_before: &Secret,
    before_secret: &Secret,
) {
    let secrets = h.secrets_api();
    let sa_after = secrets.get(SA_TOKEN).await.unwrap();
    assert_eq!(
        sa_after.type_.as_deref(),
        Some("kubernetes.io/service-account-token")
    );
    assert_eq!(
        sa_after.data, sa_secret.data,
        "the ServiceAccount token Secret's data was written"
    );
    let labels = sa_after.metadata.labels.clone().unwrap_or_default();
    let annotations = sa_after.metadata.annotations.clone().unwrap_or_default();
    assert!(
        !labels.contains_key("app.kubernetes.io/managed-by")
            && !annotations.contains_key("trackvia.io/connection"),
        "the operator wrote to the ServiceAccount token Secret"
    );
    let source_after = secrets.get("src").await.unwrap();
    assert_eq!(
        source_after.metadata.resource_version, source_before.metadata.resource_version,
        "the source Secret was written"
    );
    let before_after = secrets.get("before").await.unwrap();
    assert_eq!(
        before_after.metadata.resource_version, before_secret.metadata.resource_version,
        "another connection's Secret was written"
    );
}
