//! Which watches cover the source Secrets the connections read: one per
//! Secret by name while there are few, wider ones above the limits (each watch
//! is an HTTP connection of its own to the API server). Pure: the watches are
//! run by [`super::watches`].

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::sources::SecretKey;

/// One watch of source Secrets.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceWatch {
    /// One Secret, selected by name.
    Name(String, String),
    /// Every Secret of a namespace; only referenced ones are looked at.
    Namespace(String),
    /// Every Secret of every namespace; only referenced ones are looked at.
    All,
}

impl SourceWatch {
    /// Does this watch report `key`?
    pub fn covers(&self, key: &SecretKey) -> bool {
        match self {
            SourceWatch::Name(ns, name) => key.0 == *ns && key.1 == *name,
            SourceWatch::Namespace(ns) => key.0 == *ns,
            SourceWatch::All => true,
        }
    }

    /// The value of the `selector` label of the watch gauge.
    pub fn selector(&self) -> &'static str {
        match self {
            SourceWatch::Name(..) => "name",
            SourceWatch::Namespace(_) => "namespace",
            SourceWatch::All => "all",
        }
    }
}

/// How many source watches may be open.
#[derive(Clone, Copy, Debug)]
pub struct SourceWatchLimits {
    /// Secrets of one namespace watched by name; above, one namespace-wide watch.
    pub per_namespace: usize,
    /// Watches of one scope; above, one watch of every Secret in it.
    pub total: usize,
}

/// The watches that cover `referenced` in `scope` (a namespace, or all): one
/// per Secret, or one per namespace when a namespace references more than
/// `limits.per_namespace` Secrets, or, when that makes more than
/// `limits.total` watches, one of the whole scope. While that one runs
/// (`whole_now`), the scope goes back to narrower watches only once they are
/// half the limit: each switch lists Secrets again, and a count hovering at the
/// limit would switch on every plan.
pub fn plan_source_watches(
    referenced: &HashSet<SecretKey>,
    scope: Option<&str>,
    limits: SourceWatchLimits,
    whole_now: bool,
) -> BTreeSet<SourceWatch> {
    let plan = watches_per_namespace(referenced, limits.per_namespace.max(1));
    let total = limits.total.max(1);
    let most = if whole_now { (total / 2).max(1) } else { total };
    if plan.len() <= most {
        return plan;
    }
    BTreeSet::from([whole_scope(scope)])
}

/// The watch of every Secret of `scope` (a namespace, or all).
pub fn whole_scope(scope: Option<&str>) -> SourceWatch {
    scope.map_or(SourceWatch::All, |ns| SourceWatch::Namespace(ns.into()))
}

fn watches_per_namespace(referenced: &HashSet<SecretKey>, limit: usize) -> BTreeSet<SourceWatch> {
    let mut by_namespace: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (ns, name) in referenced {
        by_namespace.entry(ns).or_default().push(name);
    }
    let mut plan = BTreeSet::new();
    for (ns, names) in by_namespace {
        if names.len() > limit {
            plan.insert(SourceWatch::Namespace(ns.to_string()));
        } else {
            plan.extend(
                names
                    .into_iter()
                    .map(|n| SourceWatch::Name(ns.to_string(), n.to_string())),
            );
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ns: &str, name: &str) -> SecretKey {
        (ns.to_string(), name.to_string())
    }

    #[test]
    fn a_namespace_over_the_limit_gets_one_watch() {
        let referenced: HashSet<SecretKey> = [
            key("a", "one"),
            key("a", "two"),
            key("b", "one"),
            key("b", "two"),
            key("b", "three"),
        ]
        .into_iter()
        .collect();
        let plan = plan_source_watches(&referenced, None, limits(2, 100), false);
        assert_eq!(
            plan.into_iter().collect::<Vec<_>>(),
            vec![
                SourceWatch::Name("a".into(), "one".into()),
                SourceWatch::Name("a".into(), "two".into()),
                SourceWatch::Namespace("b".into()),
            ]
        );
        assert_eq!(
            plan_source_watches(&HashSet::new(), None, limits(2, 1), false).len(),
            0
        );
        assert_eq!(
            plan_source_watches(&referenced, None, limits(3, 100), false).len(),
            5
        );
    }

    fn limits(per_namespace: usize, total: usize) -> SourceWatchLimits {
        SourceWatchLimits {
            per_namespace,
            total,
        }
    }

    #[test]
    fn a_scope_over_the_total_gets_one_watch_of_all_its_secrets() {
        // A Secret in each of 5 namespaces: 5 watches by name, or one of all.
        let referenced: HashSet<SecretKey> = (0..5).map(|i| key(&format!("t{i}"), "s")).collect();
        let plan = |total| plan_source_watches(&referenced, None, limits(50, total), false);
        assert_eq!(plan(5).len(), 5);
        assert_eq!(plan(4), BTreeSet::from([SourceWatch::All]));
        // A namespace-wide watch counts as one: t0 over the limit, 4 names beside it.
        let mut crowded = referenced.clone();
        crowded.extend((0..3).map(|i| key("t0", &format!("more-{i}"))));
        let crowded_plan = |total| plan_source_watches(&crowded, None, limits(3, total), false);
        assert_eq!(crowded_plan(5).len(), 5);
        assert!(crowded_plan(5).contains(&SourceWatch::Namespace("t0".into())));
        assert_eq!(crowded_plan(4), BTreeSet::from([SourceWatch::All]));
        // Watching one namespace, "all" is that namespace.
        let one: HashSet<SecretKey> = (0..3).map(|i| key("t0", &format!("s{i}"))).collect();
        assert_eq!(
            plan_source_watches(&one, Some("t0"), limits(50, 2), false),
            BTreeSet::from([SourceWatch::Namespace("t0".into())])
        );
        // Back from the watch of all only at half the limit: 5 watches, then 4, then 2.
        let plan_now =
            |total, whole_now| plan_source_watches(&referenced, None, limits(50, total), whole_now);
        assert_eq!(plan_now(4, true), BTreeSet::from([SourceWatch::All]));
        assert_eq!(plan_now(8, true), BTreeSet::from([SourceWatch::All]));
        assert_eq!(plan_now(10, true).len(), 5);
        assert_eq!(plan_now(8, false).len(), 5);
        // Limits of 0 are taken as 1.
        assert_eq!(
            plan_source_watches(&one, Some("t0"), limits(0, 0), false).len(),
            1
        );
    }
}
