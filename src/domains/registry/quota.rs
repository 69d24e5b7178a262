//! The per-user registry quota (`registry.quota_mb`): the bytes of the distinct blobs linked to
//! the repositories a user owns, and of the uploads into them in progress (`meta::owner_usage`),
//! may not go beyond it. An upload into a repository counts against its owner, whoever pushes.
//!
//! Uploads in flight write through a [`Grant`] from the [`QuotaLedger`]: the first request of
//! an owner measures the usage, and every request of that owner in flight at the same time
//! takes its bytes from the same budget before writing them, so parallel uploads cannot each
//! use the room that is left.

use super::error::{Code, RegistryError};
use crate::core::error::Result;
use crate::core::id::Id;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

pub const MIB: u64 = 1024 * 1024;

/// The quota in bytes of `registry.quota_mb`; `None` when there is none (0).
pub fn limit_bytes(quota_mb: u64) -> Option<u64> {
    (quota_mb > 0).then(|| quota_mb.saturating_mul(MIB))
}

/// An owner's usage against the quota, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u64,
    pub used: u64,
}

impl Quota {
    /// Bytes that may still be added.
    pub fn room(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }

    /// Whether `bytes` more fit.
    pub fn fits(&self, bytes: u64) -> bool {
        bytes <= self.room()
    }

    /// The spec's DENIED, saying how much of the quota is used; `what` says what was refused.
    pub fn denied(&self, what: &str) -> RegistryError {
        RegistryError::new(
            Code::Denied,
            format!(
                "the repository's owner has used {} of a {} quota (registry.quota_mb): {what}",
                mib(self.used),
                mib(self.limit)
            ),
        )
    }
}

/// Bytes as MiB for a message: whole when whole, else with one decimal.
pub fn mib(bytes: u64) -> String {
    if bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    }
}

/// One owner's budget while requests of theirs are in flight.
#[derive(Debug)]
struct Budget {
    limit: u64,
    used: AtomicU64,
}

/// The budgets of owners with uploads in flight (and how many requests hold each).
#[derive(Debug, Default)]
pub struct QuotaLedger {
    owners: Mutex<HashMap<Id, (Arc<Budget>, usize)>>,
}

impl QuotaLedger {
    /// A grant on `owner`'s budget of `limit` bytes. Measured with `used` when no request of
    /// theirs is in flight (under the ledger's lock, so that two first requests do not both
    /// measure); shared with those in flight otherwise.
    pub fn enter(
        &self,
        owner: Id,
        limit: u64,
        used: impl FnOnce() -> Result<u64>,
    ) -> Result<Grant<'_>> {
        let mut owners = self.owners.lock().unwrap_or_else(PoisonError::into_inner);
        let budget = match owners.get_mut(&owner) {
            Some((budget, holders)) => {
                *holders += 1;
                budget.clone()
            }
            None => {
                let budget = Arc::new(Budget {
                    limit,
                    used: AtomicU64::new(used()?),
                });
                owners.insert(owner, (budget.clone(), 1));
                budget
            }
        };
        Ok(Grant {
            ledger: self,
            owner,
            budget,
        })
    }

    #[cfg(test)]
    fn owners_in_flight(&self) -> usize {
        self.owners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// What a request may write against its owner's quota; released when dropped.
#[derive(Debug)]
pub struct Grant<'a> {
    ledger: &'a QuotaLedger,
    owner: Id,
    budget: Arc<Budget>,
}

impl Grant<'_> {
    /// Takes `bytes` from the budget if they fit; nothing is taken otherwise.
    pub fn take(&self, bytes: u64) -> bool {
        let limit = self.budget.limit;
        self.budget
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(bytes).filter(|total| *total <= limit)
            })
            .is_ok()
    }

    /// The usage as the budget stands.
    pub fn quota(&self) -> Quota {
        Quota {
            limit: self.budget.limit,
            used: self.budget.used.load(Ordering::SeqCst),
        }
    }
}

impl Drop for Grant<'_> {
    fn drop(&mut self) {
        let mut owners = self
            .ledger
            .owners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, holders)) = owners.get_mut(&self.owner) {
            *holders -= 1;
            if *holders == 0 {
                owners.remove(&self.owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_room_is_what_the_limit_leaves() {
        let q = Quota {
            limit: 10 * MIB,
            used: 4 * MIB,
        };
        assert_eq!(q.room(), 6 * MIB);
        assert!(q.fits(6 * MIB));
        assert!(!q.fits(6 * MIB + 1));
        let over = Quota {
            limit: MIB,
            used: 3 * MIB,
        };
        assert_eq!(over.room(), 0, "usage beyond the limit leaves no room");
        assert!(over.fits(0));
        assert_eq!(limit_bytes(0), None);
        assert_eq!(limit_bytes(2), Some(2 * MIB));
        assert_eq!(limit_bytes(u64::MAX), Some(u64::MAX));
    }

    #[test]
    fn the_denial_names_the_usage_and_the_setting() {
        let e = Quota {
            limit: 10 * MIB,
            used: 3 * MIB / 2,
        }
        .denied("this upload would go beyond it");
        assert_eq!(e.code, Code::Denied);
        assert_eq!(
            e.message,
            "the repository's owner has used 1.5 MiB of a 10 MiB quota (registry.quota_mb): \
             this upload would go beyond it"
        );
    }

    #[test]
    fn requests_in_flight_share_one_budget() {
        let ledger = QuotaLedger::default();
        let owner = Id::new();
        let first = ledger.enter(owner, 100, || Ok(40)).unwrap();
        // Measured once: a second request in flight shares the budget.
        let second = ledger
            .enter(owner, 100, || panic!("measured again"))
            .unwrap();
        assert!(first.take(50));
        assert!(!second.take(11), "only 10 left");
        assert!(second.take(10));
        assert!(!first.take(1));
        assert!(first.take(0));
        assert_eq!(
            first.quota(),
            Quota {
                limit: 100,
                used: 100
            }
        );
        // Another owner has a budget of their own.
        let other = ledger.enter(Id::new(), 100, || Ok(0)).unwrap();
        assert!(other.take(100));
        drop(other);
        drop(first);
        assert_eq!(ledger.owners_in_flight(), 1);
        drop(second);
        assert_eq!(ledger.owners_in_flight(), 0);
        // Once none is in flight, the next request measures again.
        let again = ledger.enter(owner, 100, || Ok(7)).unwrap();
        assert_eq!(again.quota().used, 7);
    }

    #[test]
    fn a_failed_measure_leaves_no_budget() {
        let ledger = QuotaLedger::default();
        let owner = Id::new();
        let err = ledger.enter(owner, 100, || Err(crate::core::error::Error::internal("x")));
        assert!(err.is_err());
        assert_eq!(ledger.owners_in_flight(), 0);
    }

    #[test]
    fn concurrent_takes_never_pass_the_limit() {
        let ledger = QuotaLedger::default();
        let owner = Id::new();
        let taken = AtomicU64::new(0);
        // Held throughout, so that every thread shares this budget.
        let _held = ledger.enter(owner, 1000, || Ok(0)).unwrap();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let grant = ledger
                        .enter(owner, 1000, || panic!("measured again"))
                        .unwrap();
                    while grant.take(7) {
                        taken.fetch_add(7, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(
            taken.load(Ordering::SeqCst),
            994,
            "142 takes of 7 fit in 1000"
        );
    }
}
