use super::*;

fn tvc(name: &str, uid: &str, generation: i64, requested: Option<&str>) -> TrackViaConnection {
    let mut annotations = serde_json::Map::new();
    if let Some(at) = requested {
        annotations.insert(VERIFY_REQUESTED_ANNOTATION.into(), at.into());
    }
    serde_json::from_value(serde_json::json!({
        "apiVersion": "trackvia.io/v1alpha1", "kind": "TrackViaConnection",
        "metadata": {"name": name, "namespace": "ns", "uid": uid,
                     "generation": generation, "annotations": annotations},
        "spec": {"host": "acme.trackvia.com", "credentialsSecretRef": {"name": "src"}},
    }))
    .expect("a connection")
}

fn starts(changes: &mut SpecChanges, event: Event<TrackViaConnection>) -> bool {
    changes
        .follow(event, |key| panic!("{key:?} reported gone"))
        .start
        .is_some()
}

/// Whether `event` re-plans; after it, the readers indexed are those of
/// the connections remembered.
fn replans(changes: &mut SpecChanges, event: Event<TrackViaConnection>) -> bool {
    let replan = changes.follow(event, |_| {}).replan;
    let mut indexed: HashMap<_, HashSet<CompactString>> = HashMap::new();
    for (key, seen) in &changes.seen {
        if let Some(secret) = source(key, &seen.reads) {
            indexed.entry(secret).or_default().insert(key.name().into());
        }
    }
    assert_eq!(changes.readers, indexed, "the readers indexed drifted");
    replan
}

/// The connections `event` reports gone.
fn gone(changes: &mut SpecChanges, event: Event<TrackViaConnection>) -> Vec<Key> {
    let mut gone = Vec::new();
    changes.follow(event, |key| gone.push(key));
    gone
}

#[test]
fn a_pass_starts_for_a_new_spec_request_or_object_only() {
    let mut c = SpecChanges::default();
    assert!(starts(&mut c, Event::Apply(tvc("a", "u1", 1, None))));
    // The operator's status write: same generation.
    assert!(!starts(&mut c, Event::Apply(tvc("a", "u1", 1, None))));
    assert!(starts(&mut c, Event::Apply(tvc("a", "u1", 2, None))));
    assert!(starts(&mut c, Event::Apply(tvc("a", "u1", 2, Some("1")))));
    assert!(!starts(&mut c, Event::Apply(tvc("a", "u1", 2, Some("1")))));
    // Deleted and applied again under the same name: a new uid.
    let deleted = gone(&mut c, Event::Delete(tvc("a", "u1", 2, Some("1"))));
    assert_eq!(deleted, vec![Key::new(Some("ns"), "a")]);
    assert!(c.is_empty(), "a deleted connection is forgotten");
    assert!(starts(&mut c, Event::Apply(tvc("a", "u2", 1, None))));
    assert!(starts(&mut c, Event::Apply(tvc("b", "u3", 1, None))));
    assert_eq!(c.len(), 2);
}

fn reading(name: &str, uid: &str, generation: i64, source: &str) -> TrackViaConnection {
    let mut tvc = tvc(name, uid, generation, None);
    tvc.spec.credentials_secret_ref.name = source.into();
    tvc
}

fn read(changes: &SpecChanges) -> Vec<String> {
    let mut names: Vec<String> = changes.read_secrets().into_iter().map(|k| k.1).collect();
    names.sort();
    names
}

#[test]
fn the_source_watches_are_planned_again_only_when_the_secrets_read_change() {
    let mut c = SpecChanges::default();
    assert!(replans(&mut c, Event::Apply(reading("a", "u1", 1, "s1"))));
    // The operator's status writes, thousands of them at start-up: no re-plan.
    assert!(!replans(&mut c, Event::Apply(reading("a", "u1", 1, "s1"))));
    // Thousands of connections reading a few Secrets: one re-plan per Secret.
    for i in 0..1000 {
        let name = format!("b{i}");
        assert!(!replans(
            &mut c,
            Event::Apply(reading(&name, &name, 1, "s1"))
        ));
    }
    // A new spec reading the same Secret; then another Secret.
    assert!(!replans(&mut c, Event::Apply(reading("a", "u1", 2, "s1"))));
    assert!(replans(&mut c, Event::Apply(reading("a", "u1", 3, "s2"))));
    assert_eq!(read(&c), ["s1", "s2"]);
    // Its last reader gone, a Secret is no longer watched.
    assert!(replans(&mut c, Event::Delete(reading("a", "u1", 3, "s2"))));
    assert!(!replans(
        &mut c,
        Event::Delete(reading("b0", "b0", 1, "s1"))
    ));
    assert_eq!(read(&c), ["s1"]);
    // A relist reaches the store at its end: re-planned then if what the
    // connections read changed, not for each connection it lists.
    assert!(!replans(&mut c, Event::Init));
    assert!(!replans(
        &mut c,
        Event::InitApply(reading("b1", "b1", 1, "s1"))
    ));
    assert!(!replans(&mut c, Event::InitDone));
    assert_eq!(read(&c), ["s1"]);
    assert_eq!(c.len(), 1, "what the relist did not list is forgotten");
    assert!(!replans(&mut c, Event::Init));
    assert!(!replans(
        &mut c,
        Event::InitApply(reading("b1", "b1", 1, "s3"))
    ));
    assert!(replans(&mut c, Event::InitDone));
    assert_eq!(read(&c), ["s3"]);
    assert!(replans(&mut c, Event::Delete(reading("b1", "b1", 1, "s3"))));
    assert!(c.read_secrets().is_empty());
}

#[test]
fn leaving_a_secret_for_another_read_already_replans_only_when_it_was_the_last() {
    let mut c = SpecChanges::default();
    assert!(replans(&mut c, Event::Apply(reading("a", "a", 1, "s1"))));
    assert!(replans(&mut c, Event::Apply(reading("b", "b", 1, "s2"))));
    assert!(!replans(&mut c, Event::Apply(reading("c", "c", 1, "s2"))));
    // b leaves s2, which c still reads; then c leaves it, the last.
    assert!(!replans(&mut c, Event::Apply(reading("b", "b", 2, "s1"))));
    assert!(replans(&mut c, Event::Apply(reading("c", "c", 2, "s1"))));
    assert_eq!(read(&c), ["s1"]);
    // A deletion of a connection never seen changes nothing.
    assert!(!replans(&mut c, Event::Delete(reading("x", "x", 1, "s1"))));
    assert_eq!(c.len(), 3);
    // A relist started again before its end counts only the last one's list.
    assert!(!replans(&mut c, Event::Init));
    assert!(!replans(
        &mut c,
        Event::InitApply(reading("a", "a", 2, "s9"))
    ));
    assert!(!replans(&mut c, Event::Init));
    assert!(!replans(
        &mut c,
        Event::InitApply(reading("a", "a", 2, "s1"))
    ));
    assert!(!replans(&mut c, Event::InitDone));
    assert_eq!((c.len(), read(&c)), (1, vec!["s1".to_string()]));
}

#[test]
fn the_secrets_read_are_known_per_namespace() {
    let mut c = SpecChanges::default();
    let mut other = reading("a", "u2", 1, "s1");
    other.metadata.namespace = Some("other".into());
    assert!(replans(&mut c, Event::Apply(reading("a", "u1", 1, "s1"))));
    assert!(replans(&mut c, Event::Apply(other.clone())));
    let expected: HashSet<SecretKey> = [("ns", "s1"), ("other", "s1")]
        .map(|(ns, name)| (ns.to_string(), name.to_string()))
        .into();
    assert_eq!(c.read_secrets(), expected);
    assert!(replans(&mut c, Event::Delete(other)));
    // A connection without a namespace (never delivered: the resource is
    // namespaced) reads nothing a watch could cover.
    let mut nowhere = reading("n", "u3", 1, "s1");
    nowhere.metadata.namespace = None;
    assert!(!replans(&mut c, Event::Apply(nowhere)));
    assert_eq!(read(&c), ["s1"]);
    assert_eq!(c.read_secrets().len(), 1);
}

#[test]
fn a_relist_starts_passes_for_changes_only_and_keeps_what_it_listed() {
    let mut c = SpecChanges::default();
    for name in ["a", "b", "gone"] {
        starts(&mut c, Event::Apply(tvc(name, name, 1, None)));
    }
    assert!(!starts(&mut c, Event::Init));
    assert!(!starts(&mut c, Event::InitApply(tvc("a", "a", 1, None))));
    assert!(starts(&mut c, Event::InitApply(tvc("b", "b", 2, None))));
    assert!(starts(&mut c, Event::InitApply(tvc("new", "new", 1, None))));
    // Deleted and applied again under its name while the watch was away.
    assert!(starts(
        &mut c,
        Event::InitApply(tvc("a", "a-again", 1, None))
    ));
    assert_eq!(
        c.len(),
        3,
        "until the relist ends, what was seen before counts"
    );
    // Deleted while the watch was away: not listed, so forgotten.
    let missing = gone(&mut c, Event::InitDone);
    assert_eq!(missing, vec![Key::new(Some("ns"), "gone")]);
    assert_eq!(c.len(), 3);
    assert!(starts(&mut c, Event::Apply(tvc("gone", "gone", 1, None))));
}

#[test]
fn a_secrets_readers_follow_moves_deletions_and_relists() {
    let mut c = SpecChanges::default();
    let mut elsewhere = reading("d", "d", 1, "s1");
    elsewhere.metadata.namespace = Some("other".into());
    for tvc in [
        reading("a", "a", 1, "s1"),
        reading("b", "b", 1, "s1"),
        reading("c", "c", 1, "s2"),
        elsewhere,
    ] {
        replans(&mut c, Event::Apply(tvc));
    }
    let readers = |c: &SpecChanges, secret: &str| {
        let mut names: Vec<String> = c
            .readers_of(&("ns".to_string(), secret.to_string()))
            .into_iter()
            .inspect(|reader| assert_eq!(reader.namespace(), "ns"))
            .map(|reader| reader.name().to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(readers(&c, "s1"), ["a", "b"]);
    assert_eq!(readers(&c, "s2"), ["c"]);
    assert!(readers(&c, "unread").is_empty());
    let other = ("other".to_string(), "s1".to_string());
    assert_eq!(
        c.readers_of(&other),
        [Key::new(Some("other"), "d")],
        "the readers of another namespace's s1"
    );
    // b moves to s2; a is deleted.
    replans(&mut c, Event::Apply(reading("b", "b", 2, "s2")));
    replans(&mut c, Event::Delete(reading("a", "a", 1, "s1")));
    assert!(readers(&c, "s1").is_empty());
    assert_eq!(readers(&c, "s2"), ["b", "c"]);
    // A relist: c now reads s1, b is gone.
    replans(&mut c, Event::Init);
    replans(&mut c, Event::InitApply(reading("c", "c", 2, "s1")));
    assert_eq!(readers(&c, "s2"), ["b", "c"], "until the relist ends");
    replans(&mut c, Event::InitDone);
    assert_eq!(readers(&c, "s1"), ["c"]);
    assert!(readers(&c, "s2").is_empty());
}
