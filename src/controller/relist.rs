//! Following the relists of a Secret watch: a relist raises no delete for a
//! Secret deleted while the watch was away, so what it listed is compared with
//! what was known.

use std::collections::HashSet;

use kube::runtime::reflector::Lookup;
use kube::runtime::watcher::Event;

use super::sources::SecretKey;

/// Follows the relists of a Secret watch (`Init` … `InitDone`). A relist raises
/// no delete for a Secret deleted while the watch was away; what it listed,
/// handed over at its end, tells the caller which ones are gone.
#[derive(Default)]
pub struct Relist {
    listed: Option<HashSet<SecretKey>>,
}

impl Relist {
    /// Follow one event; at the end of a relist, the Secrets it listed.
    pub fn follow<K: Lookup>(&mut self, event: &Event<K>) -> Option<HashSet<SecretKey>> {
        match event {
            Event::Init => self.listed = Some(HashSet::new()),
            Event::InitApply(meta) => {
                if let (Some(listed), Some(ns), Some(name)) = (
                    self.listed.as_mut(),
                    Lookup::namespace(meta),
                    Lookup::name(meta),
                ) {
                    listed.insert((ns.into_owned(), name.into_owned()));
                }
            }
            Event::InitDone => return Some(self.listed.take().unwrap_or_default()),
            Event::Apply(_) | Event::Delete(_) => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::kept::KeptSecret;
    use crate::controller::watches::SecretMeta;
    use k8s_openapi::api::core::v1::Secret;

    fn key(ns: &str, name: &str) -> SecretKey {
        (ns.to_string(), name.to_string())
    }

    #[test]
    fn a_relist_hands_over_what_it_listed_at_its_end() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
        use kube::core::PartialObjectMetaExt;
        let meta = |name: &str| {
            ObjectMeta {
                name: Some(name.into()),
                namespace: Some("a".into()),
                ..ObjectMeta::default()
            }
            .into_response_partial::<Secret>()
        };
        let mut relist = Relist::default();
        assert_eq!(relist.follow(&Event::Apply(meta("before"))), None);
        assert_eq!(relist.follow(&Event::<SecretMeta>::Init), None);
        assert_eq!(relist.follow(&Event::InitApply(meta("one"))), None);
        // The output Secrets' watch follows its events as they are kept.
        let kept = KeptSecret::keep(meta("two"));
        assert_eq!(relist.follow(&Event::InitApply(kept)), None);
        assert_eq!(
            relist.follow(&Event::<SecretMeta>::InitDone),
            Some(HashSet::from([key("a", "one"), key("a", "two")]))
        );
        // Events after the relist are not collected; a new relist starts empty.
        assert_eq!(relist.follow(&Event::Apply(meta("three"))), None);
        assert_eq!(relist.follow(&Event::<SecretMeta>::Init), None);
        assert_eq!(
            relist.follow(&Event::<SecretMeta>::InitDone),
            Some(HashSet::new())
        );
    }
}
