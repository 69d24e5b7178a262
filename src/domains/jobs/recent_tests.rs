//! The overview's reads of recent jobs: newest first, what the caller may read, bounded.

use super::*;
use crate::domains::authz::PrincipalKind;
use crate::domains::images::{self, BuildRequest};

fn user(name: &str) -> Principal {
    let id = Id::new();
    Principal {
        id,
        kind: PrincipalKind::User,
        name: name.to_owned(),
        admin: false,
        user: id,
    }
}

#[test]
fn recent_jobs_are_the_callers_newest_first_and_counted_within_a_bound() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::domains::open_store(dir.path()).unwrap();
    let now = chrono::Utc::now();
    let (alice, bob) = (user("alice"), user("bob"));
    let admin = Principal {
        admin: true,
        ..user("root")
    };
    let mut jobs_of = Vec::new();
    for owner in [&alice, &bob] {
        let build = images::create_image(
            &store,
            dir.path(),
            owner,
            BuildRequest {
                name: format!("img-{}", owner.name),
                dockerfile: Some("FROM scratch\n".into()),
                repo_url: None,
                nocache: false,
                attachments: Vec::new(),
            },
            now,
        )
        .unwrap();
        let pipeline = create_pipeline(&store, owner, "p", now).unwrap();
        let mut made = Vec::new();
        for i in 0..4 {
            let new = NewJob {
                command: format!("echo {i}"),
                image: build.image,
                attachments: Vec::new(),
            };
            made.push(create_job(&store, dir.path(), owner, pipeline.id, new, now).unwrap());
        }
        jobs_of.push(made);
    }
    let (mine, theirs) = (&jobs_of[0], &jobs_of[1]);
    update_job(&store, mine[0].id, |j| j.state = JobState::Failed).unwrap();
    update_job(&store, mine[2].id, |j| j.state = JobState::Failed).unwrap();
    update_job(&store, mine[3].id, |j| j.state = JobState::Running).unwrap();
    update_job(&store, theirs[1].id, |j| j.state = JobState::Failed).unwrap();

    let ids = |jobs: Vec<Job>| -> Vec<Id> { jobs.iter().map(|j| j.id).collect() };
    let failed = recent_jobs(&store, &alice, Some(JobState::Failed), 5).unwrap();
    assert_eq!(ids(failed), vec![mine[2].id, mine[0].id]);
    let failed = recent_jobs(&store, &admin, Some(JobState::Failed), 2).unwrap();
    assert_eq!(ids(failed), vec![theirs[1].id, mine[2].id]);
    let any = recent_jobs(&store, &bob, None, 10).unwrap();
    assert_eq!(
        ids(any),
        theirs.iter().rev().map(|j| j.id).collect::<Vec<_>>()
    );

    assert_eq!(
        count_readable_jobs(&store, &alice, JobState::Running, 100).unwrap(),
        1
    );
    assert_eq!(
        count_readable_jobs(&store, &bob, JobState::Running, 100).unwrap(),
        0
    );
    assert_eq!(
        count_readable_jobs(&store, &bob, JobState::Ready, 100).unwrap(),
        3
    );
    assert_eq!(
        count_readable_jobs(&store, &bob, JobState::Ready, 2).unwrap(),
        2
    );

    let times = job_creation_times(&store, &alice, 0, 100).unwrap();
    assert_eq!(
        times,
        mine.iter().rev().map(|j| j.id.millis()).collect::<Vec<_>>()
    );
    let later = mine[3].id.millis() + 1;
    assert!(
        job_creation_times(&store, &alice, later, 100)
            .unwrap()
            .is_empty()
    );
    assert_eq!(job_creation_times(&store, &admin, 0, 3).unwrap().len(), 3);
}
