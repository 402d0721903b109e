//! The answers remembered for sharing between connections with the same
//! credential: bounded in count and in age, so the tokens seen over the
//! process's life do not accumulate.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// The bounds of the cache.
#[derive(Clone, Copy, Debug)]
pub struct CacheLimits {
    /// Most answers kept.
    pub max_entries: usize,
    /// No answer is kept longer than this.
    pub max_age: Duration,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            max_entries: 10_000,
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// Answers by key (a keyed fingerprint of the credential, host and account).
#[derive(Debug)]
pub struct AnswerCache<V> {
    limits: CacheLimits,
    entries: HashMap<String, (V, Instant)>,
}

impl<V> AnswerCache<V> {
    /// An empty cache.
    pub fn new(limits: CacheLimits) -> Self {
        AnswerCache {
            limits: CacheLimits {
                max_entries: limits.max_entries.max(1),
                ..limits
            },
            entries: HashMap::new(),
        }
    }

    /// The answer for `key`, unless it expired.
    pub fn get(&self, key: &str, now: Instant) -> Option<&V> {
        self.entries
            .get(key)
            .filter(|(_, stored)| now.saturating_duration_since(*stored) < self.limits.max_age)
            .map(|(v, _)| v)
    }

    /// Remember `value` for `key`, dropping expired answers and then the
    /// oldest tenth when the cache is full. The table keeps its size: shrinking
    /// it here would have it grow again within a few evictions, a reallocation
    /// of the whole table each time and a fragmented heap.
    pub fn put(&mut self, key: String, value: V, now: Instant) {
        if self.entries.len() >= self.limits.max_entries && !self.entries.contains_key(&key) {
            let max_age = self.limits.max_age;
            self.entries
                .retain(|_, (_, stored)| now.saturating_duration_since(*stored) < max_age);
            if self.entries.len() >= self.limits.max_entries {
                let mut ages: Vec<Instant> = self.entries.values().map(|(_, s)| *s).collect();
                ages.sort_unstable();
                let cut = ages[(ages.len() / 10).min(ages.len() - 1)];
                self.entries.retain(|_, (_, stored)| *stored > cut);
            }
        }
        self.entries.insert(key, (value, now));
    }

    /// Answers held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no answer is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_stays_within_its_bounds() {
        let start = Instant::now();
        let mut cache = AnswerCache::new(CacheLimits {
            max_entries: 100,
            max_age: Duration::from_secs(3600),
        });
        for i in 0..10_000u32 {
            let now = start + Duration::from_millis(u64::from(i));
            cache.put(format!("k{i}"), i, now);
            assert!(cache.len() <= 100, "{} answers after {i}", cache.len());
        }
        let end = start + Duration::from_secs(10);
        assert_eq!(cache.get("k9999", end), Some(&9999));
        assert_eq!(cache.get("k0", end), None, "the oldest went first");
        assert_eq!(cache.get("k9999", end + Duration::from_secs(3600)), None);
    }
}
