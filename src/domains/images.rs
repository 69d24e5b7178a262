//! Images (kabuto's `/image`): a name, a Dockerfile (or a repository holding one) and
//! attachments, built asynchronously on the engine. An image keeps its id across rebuilds; each
//! build is its own record, polled through `/image/build/<id>`.
//!
//! On disk: `<data>/images/<image id>/context/` holds the Dockerfile and the attachments, so that
//! a rebuild (`PUT /image/<id>`) or a build interrupted by a restart can run again. Running a
//! build is the engine layer's (`engine::builds`).

use crate::core::clock::Timestamp;
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::core::names;
use crate::core::page::{Page, PageRequest};
use crate::core::store::{Opening, Store, StoreError, decode};
use crate::domains::authz::{self, Acl, Capability, Facet, Kind, ObjectMeta, Principal};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub mod repo;

const IMAGES: TableDefinition<u128, &[u8]> = TableDefinition::new("images");
const BUILDS: TableDefinition<u128, &[u8]> = TableDefinition::new("builds");

pub(crate) fn init_tables(txn: &WriteTransaction, opening: Opening) -> Result<(), StoreError> {
    txn.open_table(IMAGES)?;
    txn.open_table(BUILDS)?;
    if opening.upgrades_past(1) {
        let mut all = Vec::new();
        for entry in txn.open_table(BUILDS)?.iter()? {
            all.push(decode::<Build>(entry?.1.value())?);
        }
        for b in &all {
            authz::set_facets(txn, b.id, &b.facets()).map_err(|e| StoreError::Db(e.to_string()))?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Image {
    pub id: Id,
    pub owner: Id,
    pub name: String,
    /// The Dockerfile text (empty for repository builds).
    pub dockerfile: String,
    #[serde(default)]
    pub repo_url: Option<String>,
    #[serde(default)]
    pub attachments: Vec<String>,
    #[serde(default)]
    pub nocache: bool,
    pub creation_date: Timestamp,
    /// The engine's id of the last successful build.
    #[serde(default)]
    pub docker_id: Option<String>,
    #[serde(default)]
    pub built: Option<Timestamp>,
    /// Where the appliance's registry holds it (`<login>/<name>`).
    #[serde(default)]
    pub repository: Option<String>,
    /// The most recent build, successful or not.
    pub last_build: Id,
    /// Which build context directory is this record's (`context-<id>`; `None`: `context`, as
    /// images made before contexts were versioned). A rebuild lays out a new one and switches
    /// to it in the commit that records the build, so the record and the files on disk always
    /// match (a backup taken meanwhile pairs them right).
    #[serde(default)]
    pub context: Option<Id>,
}

impl Image {
    /// The engine tag of this image: in the appliance's namespace, so users cannot collide.
    pub fn tag(&self) -> String {
        image_tag(self.id)
    }
}

pub fn image_tag(id: Id) -> String {
    format!("dtaas/image-{id}:latest")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum BuildState {
    Pending,
    /// Built; the image id is known.
    Success,
    /// The Dockerfile (or the repository) failed.
    Failed,
    /// The appliance failed (engine down, disk full, ...).
    Failure,
}

impl BuildState {
    pub const ALL: [BuildState; 4] = [
        BuildState::Pending,
        BuildState::Success,
        BuildState::Failed,
        BuildState::Failure,
    ];

    /// Its name as the API spells it (`PENDING`, ...).
    pub fn api_name(self) -> &'static str {
        match self {
            BuildState::Pending => "PENDING",
            BuildState::Success => "SUCCESS",
            BuildState::Failed => "FAILED",
            BuildState::Failure => "FAILURE",
        }
    }

    /// Its name in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            BuildState::Pending => "pending",
            BuildState::Success => "success",
            BuildState::Failed => "failed",
            BuildState::Failure => "failure",
        }
    }

    /// Its number in the list index (stable: never reuse one).
    fn code(self) -> u8 {
        match self {
            BuildState::Pending => 1,
            BuildState::Success => 2,
            BuildState::Failed => 3,
            BuildState::Failure => 4,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Build {
    pub id: Id,
    pub image: Id,
    pub owner: Id,
    pub state: BuildState,
    #[serde(default)]
    pub output: String,
    #[serde(default)]
    pub error: Option<String>,
    pub created: Timestamp,
    #[serde(default)]
    pub finished: Option<Timestamp>,
}

impl Build {
    /// Its facets in the list index: its state and its image.
    fn facets(&self) -> [Facet; 2] {
        [Facet::State(self.state.code()), Facet::Parent(self.image)]
    }
}

fn put_build(txn: &WriteTransaction, build: &Build) -> Result<()> {
    put(txn, BUILDS, build.id, build)?;
    authz::set_facets(txn, build.id, &build.facets())
}

/// What a client asks to build.
pub struct BuildRequest {
    pub name: String,
    pub dockerfile: Option<String>,
    pub repo_url: Option<String>,
    pub nocache: bool,
    /// Attachments already staged on disk: (file name, path).
    pub attachments: Vec<(String, PathBuf)>,
}

pub fn images_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("images")
}

/// The build context directory of an image's record (see [`Image::context`]).
pub fn context_dir(data_dir: &Path, image: &Image) -> PathBuf {
    versioned_context_dir(data_dir, image.id, image.context)
}

fn versioned_context_dir(data_dir: &Path, image: Id, context: Option<Id>) -> PathBuf {
    let dir = images_dir(data_dir).join(image.to_string());
    match context {
        None => dir.join("context"),
        Some(c) => dir.join(format!("context-{c}")),
    }
}

fn validate_request(req: &BuildRequest) -> Result<()> {
    names::display_name(&req.name)?;
    match (&req.repo_url, &req.dockerfile) {
        (Some(url), _) => {
            // Only the accepted forms; whether a local path is allowed and where the host
            // leads are the builder's checks (they need the configuration and the network).
            repo::parse_repo_url(url).map_err(Error::bad_request)?;
        }
        (None, Some(d)) if !d.trim().is_empty() => {}
        _ => {
            return Err(Error::bad_request(
                "give the Dockerfile's text as `dockerfile`, or a repository as `repo_url`",
            ));
        }
    }
    if req.repo_url.is_none() && req.attachments.iter().any(|(n, _)| n == "Dockerfile") {
        return Err(Error::bad_request(
            "an attachment may not be named Dockerfile: the dockerfile field is the Dockerfile",
        ));
    }
    Ok(())
}

/// Lays out a new build context in `dir`: the Dockerfile and the attachments (moved from
/// their staging place), or, when the request brings none, the attachments `kept` from the
/// context `from` (linked, else copied). Answers the names of the attachments it holds: a kept
/// one that is gone from the old context (a backup restored without it) is left out, and an
/// old attachment named `Dockerfile` (a repository's) is not carried over a Dockerfile written
/// here. On failure the directory is removed.
fn write_context(
    dir: &Path,
    req: &BuildRequest,
    from: Option<&Path>,
    kept: &[String],
) -> Result<Vec<String>> {
    let written = lay_out_context(dir, req, from, kept);
    if written.is_err() {
        remove_context(dir);
    }
    written
}

fn lay_out_context(
    dir: &Path,
    req: &BuildRequest,
    from: Option<&Path>,
    kept: &[String],
) -> Result<Vec<String>> {
    use std::io::ErrorKind;
    let io = |e: std::io::Error| Error::internal(format!("writing the build context: {e}"));
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io)?;
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    if let Some(text) = &req.dockerfile {
        std::fs::write(dir.join("Dockerfile"), text).map_err(io)?;
    }
    let mut names = Vec::new();
    for (name, staged) in &req.attachments {
        crate::core::fs::move_file(staged, &dir.join(name)).map_err(io)?;
        names.push(name.clone());
    }
    if let (true, Some(from)) = (req.attachments.is_empty(), from) {
        for name in kept {
            let (old, new) = (from.join(name), dir.join(name));
            if name == "Dockerfile" && req.dockerfile.is_some() {
                // A repository's own Dockerfile, as an attachment: it wins over the text (as
                // when the image was made); without a repository it is dropped.
                if req.repo_url.is_none() {
                    continue;
                }
                std::fs::remove_file(&new).map_err(io)?;
            }
            match std::fs::hard_link(&old, &new) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound && !old.exists() => {
                    tracing::warn!(
                        "the attachment {name} is missing from {}: the rebuild goes without it",
                        from.display()
                    );
                    continue;
                }
                // Another file system, say: a copy.
                Err(e) if e.kind() != ErrorKind::AlreadyExists => {
                    std::fs::copy(&old, &new).map_err(io)?;
                }
                Err(e) => return Err(io(e)),
            }
            names.push(name.clone());
        }
    }
    // What the Dockerfile copies keeps its mode in the image: readable by any user there.
    crate::core::fs::open_for_containers(dir).map_err(io)?;
    Ok(names)
}

/// Removes a build context directory that no record names (any more); a failure is logged.
fn remove_context(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("removing {}: {e}", dir.display());
    }
}

/// Registers a new image and its first build; the caller starts the build.
pub fn create_image(
    store: &Store,
    data_dir: &Path,
    owner: &Principal,
    req: BuildRequest,
    now: Timestamp,
) -> Result<Build> {
    validate_request(&req)?;
    let image_id = Id::new();
    let build_id = Id::new();
    let dir = versioned_context_dir(data_dir, image_id, Some(build_id));
    if let Err(e) = write_context(&dir, &req, None, &[]) {
        remove_context(&images_dir(data_dir).join(image_id.to_string()));
        return Err(e);
    }
    let build = Build {
        id: build_id,
        image: image_id,
        owner: owner.id,
        state: BuildState::Pending,
        output: String::new(),
        error: None,
        created: now,
        finished: None,
    };
    let image = Image {
        id: image_id,
        owner: owner.id,
        name: req.name.trim().to_owned(),
        dockerfile: req.dockerfile.unwrap_or_default(),
        repo_url: req.repo_url,
        attachments: req.attachments.into_iter().map(|(n, _)| n).collect(),
        nocache: req.nocache,
        creation_date: now,
        docker_id: None,
        built: None,
        repository: None,
        last_build: build.id,
        context: Some(build.id),
    };
    let recorded = (|| {
        let txn = store.write()?;
        put(&txn, IMAGES, image.id, &image)?;
        put_build(&txn, &build)?;
        for (id, kind) in [(image.id, Kind::Image), (build.id, Kind::Build)] {
            authz::create_object(
                &txn,
                &ObjectMeta {
                    id,
                    kind,
                    owner: Some(owner.id),
                    created: now,
                },
            )?;
        }
        txn.commit()?;
        Ok::<_, Error>(())
    })();
    if let Err(e) = recorded {
        remove_context(&images_dir(data_dir).join(image_id.to_string()));
        return Err(e);
    }
    Ok(build)
}

/// `PUT /image/<id>`: rebuild under the same id, with whatever the request changes. The new
/// build context is laid out beside the old one and becomes the record's in the commit that
/// records the build (checked again there: one build at a time); the old one goes after.
pub fn rebuild_image(
    store: &Store,
    data_dir: &Path,
    caller: &Principal,
    id: Id,
    name: Option<String>,
    req: BuildRequest,
    now: Timestamp,
) -> Result<Build> {
    let read = |txn: &redb::ReadTransaction| -> Result<Image> {
        let acl = Acl::read(txn)?;
        acl.check(caller, id, Kind::Image, Capability::Update)?;
        get_in(&txn.open_table(IMAGES)?, id)?.ok_or_else(|| Error::not_found("Image not found"))
    };
    let building = |image: &Image| -> Result<()> {
        match get_build(store, image.last_build)? {
            Some(b) if b.state == BuildState::Pending => Err(Error::conflict(
                "this image is being built; wait for that build to end",
            )),
            _ => Ok(()),
        }
    };
    let old = read(&store.read()?)?;
    building(&old)?;
    let mut image = old.clone();
    if let Some(name) = name.filter(|n| !n.trim().is_empty()) {
        image.name = name.trim().to_owned();
    }
    if let Some(d) = req.dockerfile.as_ref().filter(|d| !d.trim().is_empty()) {
        image.dockerfile = d.clone();
        image.repo_url = None;
    }
    if let Some(url) = &req.repo_url {
        image.repo_url = Some(url.clone());
    }
    image.nocache = req.nocache;
    if !req.attachments.is_empty() {
        image.attachments = req.attachments.iter().map(|(n, _)| n.clone()).collect();
    }
    let effective = BuildRequest {
        name: image.name.clone(),
        dockerfile: (!image.dockerfile.is_empty()).then(|| image.dockerfile.clone()),
        repo_url: image.repo_url.clone(),
        nocache: image.nocache,
        attachments: req.attachments,
    };
    validate_request(&effective)?;
    let build = Build {
        id: Id::new(),
        image: id,
        owner: image.owner,
        state: BuildState::Pending,
        output: String::new(),
        error: None,
        created: now,
        finished: None,
    };
    let (old_dir, new_dir) = (
        context_dir(data_dir, &old),
        versioned_context_dir(data_dir, id, Some(build.id)),
    );
    image.attachments = write_context(&new_dir, &effective, Some(&old_dir), &old.attachments)?;
    image.last_build = build.id;
    image.context = Some(build.id);
    let recorded = (|| {
        let txn = store.write()?;
        // Nothing changed the image since it was read: no other rebuild got in between.
        let now_stored: Option<Image> = get_in(&txn.open_table(IMAGES)?, id)?;
        match now_stored {
            Some(current) if current.last_build == old.last_build => {}
            Some(current) => {
                building(&current)?;
                return Err(Error::conflict(
                    "the image was rebuilt meanwhile; look at it again and retry",
                ));
            }
            None => return Err(Error::not_found("Image not found")),
        }
        put(&txn, IMAGES, image.id, &image)?;
        put_build(&txn, &build)?;
        authz::create_object(
            &txn,
            &ObjectMeta {
                id: build.id,
                kind: Kind::Build,
                owner: Some(image.owner),
                created: now,
            },
        )?;
        txn.commit()?;
        Ok::<_, Error>(())
    })();
    match recorded {
        Ok(()) => {
            remove_context(&old_dir);
            Ok(build)
        }
        Err(e) => {
            remove_context(&new_dir);
            Err(e)
        }
    }
}

fn put<T: Serialize>(
    txn: &WriteTransaction,
    table: TableDefinition<u128, &[u8]>,
    id: Id,
    value: &T,
) -> Result<()> {
    Ok(crate::core::store::put_record(txn, table, id, value)?)
}

fn get_in<T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<u128, &'static [u8]>,
    id: Id,
) -> Result<Option<T>> {
    Ok(crate::core::store::get_record(table, id)?)
}

pub fn get_image(store: &Store, id: Id) -> Result<Option<Image>> {
    let txn = store.read()?;
    get_in(&txn.open_table(IMAGES)?, id)
}

pub fn get_build(store: &Store, id: Id) -> Result<Option<Build>> {
    let txn = store.read()?;
    get_in(&txn.open_table(BUILDS)?, id)
}

/// An image the caller may use with `cap`; 404 "Image not found" otherwise.
pub fn image_for(store: &Store, caller: &Principal, id: Id, cap: Capability) -> Result<Image> {
    let txn = store.read()?;
    Acl::read(&txn)?.check(caller, id, Kind::Image, cap)?;
    get_in(&txn.open_table(IMAGES)?, id)?.ok_or_else(|| Error::not_found("Image not found"))
}

pub fn build_for(store: &Store, caller: &Principal, id: Id) -> Result<Build> {
    let txn = store.read()?;
    Acl::read(&txn)?.check(caller, id, Kind::Build, Capability::Read)?;
    get_in(&txn.open_table(BUILDS)?, id)?.ok_or_else(|| Error::not_found("Build not found"))
}

/// A page of the images the caller may read, oldest first.
pub fn list_images(store: &Store, caller: &Principal, page: PageRequest) -> Result<Page<Image>> {
    authz::readable_page(store, IMAGES, caller, Kind::Image, &[], page)
}

/// A page of the images the caller may read whose name holds `name` (compared ignoring case),
/// oldest first; a search examines at most `authz::SCAN_BUDGET` readable images per page.
pub fn search_images(
    store: &Store,
    caller: &Principal,
    name: &str,
    page: PageRequest,
) -> Result<Page<Image>> {
    let needle = name.to_lowercase();
    authz::readable_page_where(
        store,
        IMAGES,
        caller,
        Kind::Image,
        &[],
        page,
        |i: &Image| i.name.to_lowercase().contains(&needle),
    )
}

/// What build lists filter on.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildFilter {
    pub image: Option<Id>,
    pub state: Option<BuildState>,
}

/// A page of the builds the caller may read, oldest first, through the list index (a build's
/// facets are its state and its image).
pub fn list_builds(
    store: &Store,
    caller: &Principal,
    filter: BuildFilter,
    page: PageRequest,
) -> Result<Page<Build>> {
    let mut facets = Vec::new();
    if let Some(state) = filter.state {
        facets.push(Facet::State(state.code()));
    }
    if let Some(image) = filter.image {
        facets.push(Facet::Parent(image));
    }
    authz::readable_page(store, BUILDS, caller, Kind::Build, &facets, page)
}

/// Records a finished build and, on success, the image's new engine id and registry
/// repository.
pub fn finish_build(store: &Store, build: &Build, built: Option<(String, String)>) -> Result<()> {
    let txn = store.write()?;
    put_build(&txn, build)?;
    if let Some((docker_id, repository)) = built {
        let image: Option<Image> = get_in(&txn.open_table(IMAGES)?, build.image)?;
        if let Some(mut image) = image {
            image.docker_id = Some(docker_id);
            image.repository = Some(repository);
            image.built = build.finished;
            put(&txn, IMAGES, image.id, &image)?;
        }
    }
    txn.commit()?;
    Ok(())
}

/// The builds not finished (for recovery), found through the list index.
pub fn pending_builds(store: &Store) -> Result<Vec<Build>> {
    let txn = store.read()?;
    let ids = authz::every_with(
        &txn,
        Kind::Build,
        &[Facet::State(BuildState::Pending.code())],
    )?;
    let builds = txn.open_table(BUILDS)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.extend(get_in::<Build>(&builds, id)?);
    }
    Ok(out)
}

/// Deletes an image's records and files; the caller removes it from the engine.
pub fn delete_image(store: &Store, data_dir: &Path, caller: &Principal, id: Id) -> Result<Image> {
    let txn = store.write()?;
    Acl::write(&txn)?.check(caller, id, Kind::Image, Capability::Delete)?;
    let image: Image =
        get_in(&txn.open_table(IMAGES)?, id)?.ok_or_else(|| Error::not_found("Image not found"))?;
    if get_in::<Build>(&txn.open_table(BUILDS)?, image.last_build)?
        .is_some_and(|b| b.state == BuildState::Pending)
    {
        return Err(Error::conflict(
            "this image is being built; wait for that build to end",
        ));
    }
    txn.open_table(IMAGES)?.remove(id.0)?;
    authz::delete_object(&txn, id)?;
    for b in authz::every_in(&txn, Kind::Build, Facet::Parent(id))? {
        txn.open_table(BUILDS)?.remove(b.0)?;
        authz::delete_object(&txn, b)?;
    }
    txn.commit()?;
    let dir = images_dir(data_dir).join(id.to_string());
    if let Err(e) = std::fs::remove_dir_all(&dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("removing {}: {e}", dir.display());
    }
    Ok(image)
}

/// What a backup of the store as of `txn` holds of images: each build context (the Dockerfile
/// written from the image's record, and the attachments), with the counts of images and builds.
pub(crate) fn backup_wanted(
    txn: &redb::ReadTransaction,
    counts: &mut crate::core::backup::Counts,
    out: &mut Vec<crate::core::backup::Wanted>,
) -> Result<()> {
    use crate::core::backup::{Content, Wanted};
    use redb::ReadableTableMetadata;
    counts.insert("images".into(), txn.open_table(IMAGES)?.len()?);
    counts.insert("builds".into(), txn.open_table(BUILDS)?.len()?);
    for entry in txn.open_table(IMAGES)?.iter()? {
        let image: Image = decode(entry?.1.value())?;
        let dir = context_dir(Path::new(""), &image);
        if image.repo_url.is_none() && !image.dockerfile.is_empty() {
            out.push(Wanted {
                path: dir.join("Dockerfile"),
                content: Content::Bytes {
                    bytes: image.dockerfile.clone().into_bytes(),
                    mode: 0o644,
                },
                fingerprint: String::new(),
                kind: "build_context_files",
            });
        }
        for name in &image.attachments {
            out.push(Wanted {
                path: dir.join(name),
                content: Content::File {
                    required: true,
                    sha256: None,
                },
                // A rebuild with new attachments replaces them and makes a new build.
                fingerprint: image.last_build.to_string(),
                kind: "build_context_files",
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domains::accounts::{self, NewUser};
    use crate::domains::authz::PrincipalKind;

    fn owner(store: &Store) -> Principal {
        let user = accounts::create_user(
            store,
            NewUser {
                login: "ada".into(),
                email: None,
                password_hash: "$argon2id$x".into(),
                confirmed: true,
                confirm_token: None,
                admin: false,
            },
            chrono::Utc::now(),
        )
        .unwrap();
        Principal {
            id: user.id,
            kind: PrincipalKind::User,
            name: "ada".into(),
            admin: false,
            user: user.id,
        }
    }

    fn request(dockerfile: Option<&str>, attachments: Vec<(String, PathBuf)>) -> BuildRequest {
        BuildRequest {
            name: "img".into(),
            dockerfile: dockerfile.map(str::to_owned),
            repo_url: None,
            nocache: false,
            attachments,
        }
    }

    fn end(store: &Store, build: &Build) {
        let mut done = build.clone();
        done.state = BuildState::Failure;
        finish_build(store, &done, None).unwrap();
    }

    #[test]
    fn a_rebuild_switches_to_a_new_context_in_its_commit() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let store = crate::domains::open_store(&data).unwrap();
        let ada = owner(&store);
        let now = chrono::Utc::now();
        let stage = |name: &str, content: &str| {
            let p = dir.path().join(format!("staged-{name}-{content}"));
            std::fs::write(&p, content).unwrap();
            (name.to_owned(), p)
        };
        let first = create_image(
            &store,
            &data,
            &ada,
            request(Some("FROM scratch\nCOPY a /\n"), vec![stage("a", "one")]),
            now,
        )
        .unwrap();
        let image = get_image(&store, first.image).unwrap().unwrap();
        let first_dir = context_dir(&data, &image);
        assert_eq!(std::fs::read(first_dir.join("a")).unwrap(), b"one");

        // While a build is pending, a rebuild is refused and leaves nothing behind.
        let refused = rebuild_image(
            &store,
            &data,
            &ada,
            image.id,
            None,
            request(Some("FROM scratch\n"), vec![]),
            now,
        );
        assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
        let dirs = || {
            let mut names: Vec<String> =
                std::fs::read_dir(images_dir(&data).join(image.id.to_string()))
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
            names.sort();
            names
        };
        assert_eq!(dirs().len(), 1);

        // A new Dockerfile and no new attachments: the old ones are carried over to a new
        // context, which the record names; the old context is gone.
        end(&store, &first);
        let second = rebuild_image(
            &store,
            &data,
            &ada,
            image.id,
            None,
            request(Some("FROM scratch\nCOPY a /b\n"), vec![]),
            now,
        )
        .unwrap();
        let image = get_image(&store, first.image).unwrap().unwrap();
        assert_eq!(image.context, Some(second.id));
        let second_dir = context_dir(&data, &image);
        assert_ne!(second_dir, first_dir);
        assert_eq!(std::fs::read(second_dir.join("a")).unwrap(), b"one");
        assert_eq!(
            std::fs::read_to_string(second_dir.join("Dockerfile")).unwrap(),
            "FROM scratch\nCOPY a /b\n"
        );
        assert!(!first_dir.exists());
        assert_eq!(dirs().len(), 1);

        // New attachments replace the old ones.
        end(&store, &second);
        rebuild_image(
            &store,
            &data,
            &ada,
            image.id,
            None,
            request(None, vec![stage("c", "three")]),
            now,
        )
        .unwrap();
        let image = get_image(&store, first.image).unwrap().unwrap();
        assert_eq!(image.attachments, vec!["c".to_owned()]);
        let third_dir = context_dir(&data, &image);
        assert!(!third_dir.join("a").exists());
        assert_eq!(std::fs::read(third_dir.join("c")).unwrap(), b"three");
        assert_eq!(
            std::fs::read_to_string(third_dir.join("Dockerfile")).unwrap(),
            "FROM scratch\nCOPY a /b\n",
            "the Dockerfile stays"
        );
        assert_eq!(dirs().len(), 1);

        // A kept attachment gone from the old context (a backup restored without it): the
        // rebuild goes without it, and says so in the record.
        let third = get_build(&store, image.last_build).unwrap().unwrap();
        end(&store, &third);
        std::fs::remove_file(third_dir.join("c")).unwrap();
        rebuild_image(
            &store,
            &data,
            &ada,
            image.id,
            None,
            request(Some("FROM scratch\n"), vec![]),
            now,
        )
        .unwrap();
        let image = get_image(&store, first.image).unwrap().unwrap();
        assert!(image.attachments.is_empty(), "{:?}", image.attachments);
        assert_eq!(dirs().len(), 1);

        // A repository build's `Dockerfile` attachment is not carried over a Dockerfile given.
        let repo = create_image(
            &store,
            &data,
            &ada,
            BuildRequest {
                name: "from-git".into(),
                dockerfile: None,
                repo_url: Some("https://example.org/x.git".into()),
                nocache: false,
                attachments: vec![stage("Dockerfile", "FROM old\n")],
            },
            now,
        )
        .unwrap();
        end(&store, &repo);
        rebuild_image(
            &store,
            &data,
            &ada,
            repo.image,
            None,
            request(Some("FROM new\n"), vec![]),
            now,
        )
        .unwrap();
        let rebuilt = get_image(&store, repo.image).unwrap().unwrap();
        assert_eq!(
            std::fs::read_to_string(context_dir(&data, &rebuilt).join("Dockerfile")).unwrap(),
            "FROM new\n"
        );
        assert!(rebuilt.attachments.is_empty(), "{:?}", rebuilt.attachments);

        // An image recorded before contexts were versioned keeps its `context` directory.
        let legacy = Image {
            context: None,
            ..image
        };
        assert!(context_dir(&data, &legacy).ends_with("context"));
    }
}
