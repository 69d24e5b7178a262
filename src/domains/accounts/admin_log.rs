//! The log of administrators' actions: who changed which account or setting, and when. Written
//! by the dashboard's admin pages and by the admin socket's commands; append-only, and bounded
//! (the oldest entries go once [`MAX_ENTRIES`] are kept), so that it cannot grow without end.

use super::ADMIN_LOG;
use crate::core::clock::Timestamp;
use crate::core::error::Result;
use crate::core::id::Id;
use crate::core::store::{Store, decode, encode};
use redb::ReadableTableMetadata;
use serde::{Deserialize, Serialize};

/// How many entries the log keeps.
pub const MAX_ENTRIES: u64 = 1000;

/// The longest text kept in a field (a login, an action, a target).
const MAX_FIELD: usize = 200;

/// One administrator's action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminAction {
    /// Time-ordered: the log's order.
    pub id: Id,
    pub at: Timestamp,
    /// Who did it: an administrator's login, or `dtaas admin` for the local command line.
    pub admin: String,
    /// What was done, e.g. `disable-user`.
    pub action: String,
    /// What it was done to, e.g. a login or a setting's new value.
    pub target: String,
}

fn field(text: &str) -> String {
    text.chars().take(MAX_FIELD).collect()
}

/// Appends an entry, dropping the oldest beyond [`MAX_ENTRIES`].
pub fn record_admin_action(
    store: &Store,
    admin: &str,
    action: &str,
    target: &str,
    at: Timestamp,
) -> Result<AdminAction> {
    let entry = AdminAction {
        id: Id::new(),
        at,
        admin: field(admin),
        action: field(action),
        target: field(target),
    };
    let txn = store.write()?;
    {
        let mut log = txn.open_table(ADMIN_LOG)?;
        log.insert(entry.id.0, encode(&entry)?.as_slice())?;
        let excess = log.len()?.saturating_sub(MAX_ENTRIES);
        for _ in 0..excess {
            log.pop_first()?;
        }
    }
    txn.commit()?;
    Ok(entry)
}

/// The entries older than `before` (all when `None`), newest first, at most `limit`, and
/// whether older ones follow.
pub fn admin_actions(
    store: &Store,
    before: Option<Id>,
    limit: usize,
) -> Result<(Vec<AdminAction>, bool)> {
    let txn = store.read()?;
    let log = txn.open_table(ADMIN_LOG)?;
    let end = before.map_or(u128::MAX, |b| b.0);
    let mut out = Vec::new();
    let range = match before {
        Some(_) => log.range(..end)?,
        None => log.range(..=end)?,
    };
    for entry in range.rev() {
        let (_, v) = entry?;
        if out.len() == limit {
            return Ok((out, true));
        }
        out.push(decode(v.value())?);
    }
    Ok((out, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_the_newest_entries_newest_first_and_pages_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::domains::open_store(dir.path()).unwrap();
        let now = chrono::Utc::now();
        assert_eq!(
            admin_actions(&store, None, 10).unwrap(),
            (Vec::new(), false)
        );
        let mut made = Vec::new();
        for i in 0..MAX_ENTRIES + 5 {
            let target = format!("user{i}");
            made.push(record_admin_action(&store, "root", "disable-user", &target, now).unwrap());
        }
        let (page, more) = admin_actions(&store, None, 3).unwrap();
        assert!(more);
        let targets: Vec<&str> = page.iter().map(|a| a.target.as_str()).collect();
        assert_eq!(targets, ["user1004", "user1003", "user1002"]);
        let (next, _) = admin_actions(&store, Some(page[2].id), 2).unwrap();
        assert_eq!(next[0].target, "user1001");
        // Bounded: the five oldest are gone.
        let (all, more) = admin_actions(&store, None, 2000).unwrap();
        assert!(!more);
        assert_eq!(all.len() as u64, MAX_ENTRIES);
        assert_eq!(all.last().unwrap().target, "user5");
        assert_eq!(all.last().unwrap(), &made[5]);
        // Long fields are cut.
        let long = "x".repeat(1000);
        let entry = record_admin_action(&store, &long, "a", &long, now).unwrap();
        assert_eq!(entry.admin.len(), MAX_FIELD);
        assert_eq!(entry.target.len(), MAX_FIELD);
    }
}
