//! The OpenID Connect provider's records: signing keys (ES256, rotated with overlap),
//! authorization codes, access and refresh tokens, client secrets and consents. Codes, tokens
//! and secrets are stored as their SHA-256 only; time is passed in.
//!
//! | rule | where |
//! | --- | --- |
//! | a code is good once, for 60 s, for its client, redirect URI and PKCE verifier | [`redeem_code`] |
//! | a refresh token is good once; a second use revokes its whole family | [`rotate_refresh`] |
//! | a key signs for 30 days; its successor is in the JWKS 2 days before it signs; a retired key's public half is served while its tokens live | [`plan_keys`], [`sign`], [`public_keys`] |

use crate::core::clock::{self, Timestamp};
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::core::secrets::{constant_time_eq, random_token, secret_hash};
use crate::core::store::{Opening, Store, StoreError, decode, encode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};
use ring::hmac;
use ring::rand::SecureRandom;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// How long an authorization code is good for.
pub const CODE_SECS: i64 = 60;
/// How long ID tokens and access tokens are good for.
pub const TOKEN_SECS: i64 = 600;
/// How long a refresh token is good for.
pub const REFRESH_SECS: i64 = 30 * 24 * 3600;
/// How long a key signs before its successor takes over.
pub const KEY_MAX_AGE_SECS: i64 = 30 * 24 * 3600;
/// How long before it signs a successor key is served in the JWKS.
pub const KEY_PUBLISHED_AHEAD_SECS: i64 = 2 * 24 * 3600;

/// Key id -> `SigningKey`.
const KEYS: TableDefinition<u128, &[u8]> = TableDefinition::new("oidc_keys");
/// Hash of a code -> `CodeGrant`.
const CODES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("oidc_codes");
/// Hash of an access token -> `TokenGrant`.
const ACCESS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("oidc_access");
/// Hash of a refresh token -> `Refresh`.
const REFRESH: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("oidc_refresh");
/// Refresh token families revoked because a used token came back (-> nothing). The tables'
/// types are among those a database copy knows (`core::store`).
const REVOKED_FAMILIES: TableDefinition<u128, &[u8]> =
    TableDefinition::new("oidc_revoked_families");
/// When the records of the three tables above expire: (table tag, expiry in unix seconds, the
/// record's key) -> (), so that pruning reads only what has expired.
const EXPIRIES: TableDefinition<(u8, i64, [u8; 32]), ()> = TableDefinition::new("oidc_expiries");
const TAG_CODE: u8 = 1;
const TAG_ACCESS: u8 = 2;
const TAG_REFRESH: u8 = 3;
/// The provider's own secrets by name: `reauth` (32 random bytes), the key of the
/// re-authentication tickets' MACs, made when the store is made.
const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("oidc_secrets");
const REAUTH_KEY: &str = "reauth";
/// Client (servable) -> SHA-256 of its secret.
const CLIENT_SECRETS: TableDefinition<u128, &[u8]> = TableDefinition::new("oidc_client_secrets");
/// (user, client): the user allowed the client.
const CONSENTS: TableDefinition<(u128, u128), ()> = TableDefinition::new("oidc_consents");

pub(crate) fn init_tables(txn: &WriteTransaction, _: Opening) -> Result<(), StoreError> {
    txn.open_table(KEYS)?;
    txn.open_table(CODES)?;
    txn.open_table(ACCESS)?;
    txn.open_table(REFRESH)?;
    txn.open_table(REVOKED_FAMILIES)?;
    txn.open_table(CLIENT_SECRETS)?;
    txn.open_table(CONSENTS)?;
    {
        let mut secrets = txn.open_table(SECRETS)?;
        if secrets.get(REAUTH_KEY)?.is_none() {
            let mut key = [0u8; 32];
            SystemRandom::new()
                .fill(&mut key)
                .map_err(|_| StoreError::Codec("no randomness for the OIDC ticket key".into()))?;
            secrets.insert(REAUTH_KEY, &key[..])?;
        }
    }
    if txn.open_table(EXPIRIES)?.is_empty()? {
        index_expiries(txn).map_err(|e| StoreError::Codec(e.to_string()))?;
    }
    Ok(())
}

/// Indexes the expiry of every code and token (a store made before the index).
fn index_expiries(txn: &WriteTransaction) -> Result<()> {
    let mut found: Vec<(u8, i64, [u8; 32])> = Vec::new();
    let mut read = |def: TableDefinition<&[u8; 32], &[u8]>,
                    tag: u8,
                    expires: &dyn Fn(&[u8]) -> Result<Timestamp>|
     -> Result<()> {
        for entry in txn.open_table(def)?.iter()? {
            let (k, v) = entry?;
            match expires(v.value()) {
                Ok(at) => found.push((tag, at.timestamp(), *k.value())),
                // Unreadable: pruned at once (a code or token nobody can use).
                Err(e) => {
                    tracing::warn!("an unreadable OpenID Connect record is dropped: {e}");
                    found.push((tag, i64::MIN, *k.value()));
                }
            }
        }
        Ok(())
    };
    read(CODES, TAG_CODE, &|v| Ok(decode::<CodeGrant>(v)?.expires))?;
    read(
        ACCESS,
        TAG_ACCESS,
        &|v| Ok(decode::<TokenGrant>(v)?.expires),
    )?;
    read(REFRESH, TAG_REFRESH, &|v| {
        Ok(decode::<Refresh>(v)?.grant.expires)
    })?;
    let mut index = txn.open_table(EXPIRIES)?;
    for key in found {
        index.insert(key, ())?;
    }
    Ok(())
}

/// The issuer: the configured `public_url` (where people and apps reach the appliance, e.g.
/// behind a proxy), else the listener at `addr`: its scheme, host and port (the host
/// `localhost` when it listens on every address).
pub fn issuer(public_url: &str, tls: bool, addr: std::net::SocketAddr) -> String {
    if !public_url.is_empty() {
        return public_url.trim_end_matches('/').to_owned();
    }
    crate::core::config::listener_origin(tls, addr)
}

// ---- signing keys ----

#[derive(Serialize, Deserialize)]
struct SigningKey {
    kid: String,
    /// The private key (PKCS#8).
    pkcs8: Vec<u8>,
    /// The public point, uncompressed (0x04 || x || y).
    public: Vec<u8>,
    created: Timestamp,
    /// When it starts signing, for a key published ahead of its use; `None`: at `created`.
    #[serde(default)]
    signs_from: Option<Timestamp>,
    /// When a newer key took over signing.
    retired: Option<Timestamp>,
}

impl SigningKey {
    fn signs_from(&self) -> Timestamp {
        self.signs_from.unwrap_or(self.created)
    }
}

/// A public key of the JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kid: String,
    /// The public point, uncompressed (0x04 || x || y).
    pub point: Vec<u8>,
}

impl PublicKey {
    /// The key as a JWK (EC, P-256).
    pub fn jwk(&self) -> Value {
        let (x, y) = self
            .point
            .get(1..)
            .unwrap_or_default()
            .split_at(self.point.len().saturating_sub(1) / 2);
        serde_json::json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        })
    }
}

fn seconds(secs: i64) -> chrono::Duration {
    chrono::Duration::seconds(secs)
}

fn keys_in<T: ReadableTable<u128, &'static [u8]>>(table: &T) -> Result<Vec<(u128, SigningKey)>> {
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (k, v) = entry?;
        out.push((k.value(), decode(v.value())?));
    }
    Ok(out)
}

/// The key that signs at `now`: of those not retired and already signing, the one that
/// started last; when none has started (the clock stepped back past a switch), the published
/// successor that starts first, rather than a key nobody has seen.
fn signer(keys: &[(u128, SigningKey)], now: Timestamp) -> Option<&(u128, SigningKey)> {
    let live = || keys.iter().filter(|(_, k)| k.retired.is_none());
    live()
        .filter(|(_, k)| k.signs_from() <= now)
        .max_by_key(|(id, k)| (k.signs_from(), *id))
        .or_else(|| live().min_by_key(|(id, k)| (k.signs_from(), *id)))
}

/// What keeping the keys asks at `now` (see [`plan_keys`]).
#[derive(Debug, Default, PartialEq, Eq)]
struct KeyPlan {
    /// Keys a newer one took over from, with when it did.
    retire: Vec<(u128, Timestamp)>,
    /// Retired keys whose tokens have all expired.
    remove: Vec<u128>,
    /// A key to make, and when it starts signing (`None`: at once).
    create: Option<Option<Timestamp>>,
}

impl KeyPlan {
    fn is_empty(&self) -> bool {
        *self == KeyPlan::default()
    }
}

/// The rotation schedule. A key signs for [`KEY_MAX_AGE_SECS`]; its successor is made
/// [`KEY_PUBLISHED_AHEAD_SECS`] before that and served in the JWKS from then on, so relying
/// parties that cache the JWKS know it before it signs. When the successor starts signing the
/// key is retired, and it is served until the tokens it signed have expired.
fn plan_keys(keys: &[(u128, SigningKey)], now: Timestamp) -> KeyPlan {
    let mut plan = KeyPlan::default();
    let Some((current_id, current)) = signer(keys, now) else {
        plan.create = Some(None);
        return plan;
    };
    let took_over = current.signs_from();
    for (id, k) in keys {
        match k.retired {
            None if id != current_id && k.signs_from() <= now => plan.retire.push((*id, took_over)),
            Some(at) if clock::later(at, seconds(TOKEN_SECS)) < now => plan.remove.push(*id),
            _ => {}
        }
    }
    let successor = keys
        .iter()
        .any(|(_, k)| k.retired.is_none() && k.signs_from() > now);
    let ends = clock::later(took_over, seconds(KEY_MAX_AGE_SECS));
    if !successor && clock::later(now, seconds(KEY_PUBLISHED_AHEAD_SECS)) >= ends {
        let ahead = clock::later(now, seconds(KEY_PUBLISHED_AHEAD_SECS));
        plan.create = Some(Some(ends.max(ahead)));
    }
    plan
}

fn new_key(now: Timestamp, signs_from: Option<Timestamp>) -> Result<(u128, SigningKey)> {
    let rng = SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng)
        .map_err(|_| Error::internal("generating a signing key"))?;
    let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng)
        .map_err(|_| Error::internal("reading a new signing key"))?;
    let id = Id::new();
    let key = SigningKey {
        kid: id.to_string(),
        pkcs8: pkcs8.as_ref().to_vec(),
        public: pair.public_key().as_ref().to_vec(),
        created: now,
        signs_from,
        retired: None,
    };
    Ok((id.0, key))
}

/// Carries out the rotation schedule ([`plan_keys`]) in `txn`; answers the signing key's id
/// and private key.
fn keep_keys(txn: &WriteTransaction, now: Timestamp) -> Result<(String, Vec<u8>)> {
    let mut table = txn.open_table(KEYS)?;
    let mut keys = keys_in(&table)?;
    let plan = plan_keys(&keys, now);
    for (id, at) in &plan.retire {
        if let Some((_, k)) = keys.iter_mut().find(|(k, _)| k == id) {
            k.retired = Some(*at);
            table.insert(*id, encode(k)?.as_slice())?;
        }
    }
    for id in &plan.remove {
        table.remove(*id)?;
    }
    if let Some(signs_from) = plan.create {
        let (id, key) = new_key(now, signs_from)?;
        table.insert(id, encode(&key)?.as_slice())?;
        keys.push((id, key));
    }
    signer(&keys, now)
        .map(|(_, k)| (k.kid.clone(), k.pkcs8.clone()))
        .ok_or_else(|| Error::internal("no signing key after keeping the keys"))
}

/// Replaces the signing key at once (an administrator's rotation, e.g. after a leak): a new key
/// signs from now on, without being published ahead; the one that signed until now is
/// retired (still served until the tokens it signed expire), a successor published ahead and
/// not yet signing is dropped. Returns the new key's id.
pub fn rotate_key(store: &Store, now: Timestamp) -> Result<String> {
    let txn = store.write()?;
    let kid = {
        let mut table = txn.open_table(KEYS)?;
        let keys = keys_in(&table)?;
        let signing = signer(&keys, now).map(|(id, _)| *id);
        for (id, mut k) in keys {
            match k.retired {
                // Published ahead and never used: dropped.
                None if k.signs_from() > now && Some(id) != signing => {
                    table.remove(id)?;
                }
                None => {
                    k.retired = Some(now);
                    table.insert(id, encode(&k)?.as_slice())?;
                }
                Some(_) => {}
            }
        }
        let (id, key) = new_key(now, None)?;
        table.insert(id, encode(&key)?.as_slice())?;
        key.kid
    };
    txn.commit()?;
    Ok(kid)
}

/// Signs `claims` as a compact JWS (ES256) with the key that signs now, after keeping the
/// rotation schedule (the first key is made here or by [`public_keys`]).
pub fn sign(store: &Store, claims: &Value, now: Timestamp) -> Result<String> {
    let txn = store.write()?;
    let (kid, pkcs8) = keep_keys(&txn, now)?;
    txn.commit()?;
    let rng = SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
        .map_err(|_| Error::internal("reading the signing key"))?;
    let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": kid});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = pair
        .sign(&rng, input.as_bytes())
        .map_err(|_| Error::internal("signing a token"))?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())))
}

/// The public keys of the JWKS: the one that signs, its successor when published ahead, and
/// those retired less than a token's lifetime ago. The rotation schedule is kept first, so the
/// JWKS never lacks the key that signs next (a relying party may fetch it before any sign-in).
pub fn public_keys(store: &Store, now: Timestamp) -> Result<Vec<PublicKey>> {
    let keys = {
        let txn = store.read()?;
        keys_in(&txn.open_table(KEYS)?)?
    };
    let keys = if plan_keys(&keys, now).is_empty() {
        keys
    } else {
        let txn = store.write()?;
        keep_keys(&txn, now)?;
        let keys = keys_in(&txn.open_table(KEYS)?)?;
        txn.commit()?;
        keys
    };
    Ok(keys
        .into_iter()
        .filter(|(_, k)| {
            k.retired
                .is_none_or(|at| clock::later(at, seconds(TOKEN_SECS)) >= now)
        })
        .map(|(_, k)| PublicKey {
            kid: k.kid,
            point: k.public,
        })
        .collect())
}

/// The claims of a token this provider signed with a key it still serves (expiry is the
/// caller's to judge); `None` for anything else.
pub fn verify(store: &Store, token: &str, now: Timestamp) -> Result<Option<Value>> {
    if token.len() > 8192 {
        return Ok(None);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Ok(None);
    };
    let json = |part: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
    };
    let (Some(header), Some(claims), Ok(sig)) = (json(h), json(c), URL_SAFE_NO_PAD.decode(s))
    else {
        return Ok(None);
    };
    if header["alg"] != "ES256" {
        return Ok(None);
    }
    let Some(key) = public_keys(store, now)?
        .into_iter()
        .find(|k| header["kid"].as_str() == Some(k.kid.as_str()))
    else {
        return Ok(None);
    };
    let public = signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &key.point);
    let input = &token[..h.len() + 1 + c.len()];
    Ok(public.verify(input.as_bytes(), &sig).ok().map(|()| claims))
}

// ---- client secrets and consents ----

/// A new secret for a client (a servable), replacing its old one: handed to the engine, which
/// mounts it into the client's container. Only its hash is kept.
pub fn new_client_secret(store: &Store, client: Id) -> Result<String> {
    let secret = random_token();
    let txn = store.write()?;
    txn.open_table(CLIENT_SECRETS)?
        .insert(client.0, secret_hash(&secret).as_slice())?;
    txn.commit()?;
    Ok(secret)
}

/// Whether `secret` is the client's current secret (compared in constant time).
pub fn client_secret_matches(store: &Store, client: Id, secret: &str) -> Result<bool> {
    let txn = store.read()?;
    let table = txn.open_table(CLIENT_SECRETS)?;
    let Some(stored) = table.get(client.0)? else {
        return Ok(false);
    };
    Ok(constant_time_eq(stored.value(), &secret_hash(secret)))
}

/// Whether the user allowed the client before.
pub fn has_consent(store: &Store, user: Id, client: Id) -> Result<bool> {
    let txn = store.read()?;
    Ok(txn.open_table(CONSENTS)?.get((user.0, client.0))?.is_some())
}

/// Records that the user allowed the client.
pub fn give_consent(store: &Store, user: Id, client: Id) -> Result<()> {
    let txn = store.write()?;
    txn.open_table(CONSENTS)?.insert((user.0, client.0), ())?;
    txn.commit()?;
    Ok(())
}

/// Forgets a client (a servable being deleted): its secret, the consents given to it, and its
/// outstanding codes, access and refresh tokens. The token tables are read whole; deletions
/// are rare and the tables hold live grants only (expired ones are pruned as new are made).
pub fn forget_client(store: &Store, client: Id) -> Result<()> {
    let txn = store.write()?;
    txn.open_table(CLIENT_SECRETS)?.remove(client.0)?;
    {
        let mut consents = txn.open_table(CONSENTS)?;
        let given: Vec<(u128, u128)> = consents
            .iter()?
            .filter_map(|e| e.ok().map(|(k, _)| k.value()))
            .filter(|(_, c)| *c == client.0)
            .collect();
        for key in given {
            consents.remove(key)?;
        }
    }
    remove_where(&txn, CODES, |g: &CodeGrant| g.client == client)?;
    remove_where(&txn, ACCESS, |g: &TokenGrant| g.client == client)?;
    remove_where(&txn, REFRESH, |r: &Refresh| r.grant.client == client)?;
    txn.commit()?;
    Ok(())
}

// ---- re-authentication tickets ----

/// How long a re-authentication ticket is good for: a sign-in round trip.
pub const REAUTH_SECS: i64 = 600;

/// The MAC of a ticket: over the request it is for (client, redirect URI, PKCE challenge) and
/// when it was made.
fn reauth_mac(
    store: &Store,
    client: Id,
    redirect_uri: &str,
    challenge: &str,
    asked: i64,
) -> Result<hmac::Tag> {
    let txn = store.read()?;
    let secrets = txn.open_table(SECRETS)?;
    let key = secrets
        .get(REAUTH_KEY)?
        .ok_or_else(|| Error::internal("the OIDC ticket key is missing"))?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, key.value());
    let mut ctx = hmac::Context::with_key(&key);
    for part in [
        b"dtaas reauth".as_slice(),
        &client.0.to_be_bytes(),
        redirect_uri.as_bytes(),
        challenge.as_bytes(),
        &asked.to_be_bytes(),
    ] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    Ok(ctx.sign())
}

/// A ticket for an authorization request that sends the user to sign in again (`prompt=login`,
/// `max_age`): the request comes back with it, and a sign-in after `now` then satisfies it.
/// It is `<microseconds>.<MAC>`, the MAC under a key only the store holds, so a request cannot
/// claim a sign-in it did not get, and nothing is written for it.
pub fn reauth_ticket(
    store: &Store,
    client: Id,
    redirect_uri: &str,
    challenge: &str,
    now: Timestamp,
) -> Result<String> {
    let asked = now.timestamp_micros();
    let mac = reauth_mac(store, client, redirect_uri, challenge, asked)?;
    Ok(format!("{asked}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref())))
}

/// When the user was sent to sign in again for this request, if `ticket` is a live ticket of
/// this client, redirect URI and PKCE challenge; `None` otherwise.
pub fn reauth_asked(
    store: &Store,
    ticket: &str,
    client: Id,
    redirect_uri: &str,
    challenge: &str,
    now: Timestamp,
) -> Result<Option<Timestamp>> {
    let Some((asked, mac)) = ticket.split_once('.') else {
        return Ok(None);
    };
    let (Ok(asked_micros), Ok(mac)) = (asked.parse::<i64>(), URL_SAFE_NO_PAD.decode(mac)) else {
        return Ok(None);
    };
    let Some(asked) = chrono::DateTime::from_timestamp_micros(asked_micros) else {
        return Ok(None);
    };
    let expected = reauth_mac(store, client, redirect_uri, challenge, asked_micros)?;
    let live = asked <= now && clock::later(asked, seconds(REAUTH_SECS)) >= now;
    Ok((live && constant_time_eq(expected.as_ref(), &mac)).then_some(asked))
}

// ---- authorization codes ----

/// What a code stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeGrant {
    pub client: Id,
    pub user: Id,
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    pub challenge: String,
    pub nonce: Option<String>,
    /// When the user signed in (the ID token's `auth_time`).
    #[serde(default)]
    pub auth_time: Option<Timestamp>,
    pub expires: Timestamp,
}

/// Whether a PKCE verifier or challenge has the shape RFC 7636 gives it.
pub fn pkce_shape(value: &str, min: usize) -> bool {
    (min..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The S256 challenge of a verifier.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Issues a code for `grant` (its `expires` is set here); returns the code.
pub fn issue_code(store: &Store, mut grant: CodeGrant, now: Timestamp) -> Result<String> {
    grant.expires = clock::later(now, seconds(CODE_SECS));
    let code = random_token();
    let txn = store.write()?;
    prune(&txn, CODES, TAG_CODE, now)?;
    let bytes = encode(&grant)?;
    insert_expiring(
        &txn,
        CODES,
        TAG_CODE,
        &secret_hash(&code),
        &bytes,
        grant.expires,
    )?;
    txn.commit()?;
    Ok(code)
}

/// Redeems a code: it is gone once presented, whether or not it is accepted. `Ok(Err(why))`
/// when it is unknown, used, expired, another client's, for another redirect URI, or the
/// verifier does not match.
pub fn redeem_code(
    store: &Store,
    code: &str,
    client: Id,
    redirect_uri: &str,
    verifier: &str,
    now: Timestamp,
) -> Result<Result<CodeGrant, &'static str>> {
    let txn = store.write()?;
    let grant: Option<CodeGrant> = {
        let mut table = txn.open_table(CODES)?;
        let removed = table.remove(&secret_hash(code))?;
        match removed {
            Some(v) => Some(decode(v.value())?),
            None => None,
        }
    };
    txn.commit()?;
    let Some(grant) = grant else {
        return Ok(Err("the code is unknown or was used already"));
    };
    if grant.expires < now {
        return Ok(Err("the code has expired"));
    }
    if grant.client != client {
        return Ok(Err("the code was issued to another client"));
    }
    if !constant_time_eq(grant.redirect_uri.as_bytes(), redirect_uri.as_bytes()) {
        return Ok(Err("redirect_uri is not the one the code was issued for"));
    }
    if !pkce_shape(verifier, 43)
        || !constant_time_eq(s256(verifier).as_bytes(), grant.challenge.as_bytes())
    {
        return Ok(Err(
            "the PKCE code_verifier does not match the code_challenge",
        ));
    }
    Ok(Ok(grant))
}

/// Stores a record of one of the expiring tables, and its expiry in the index.
fn insert_expiring(
    txn: &WriteTransaction,
    table: TableDefinition<&[u8; 32], &[u8]>,
    tag: u8,
    key: &[u8; 32],
    record: &[u8],
    expires: Timestamp,
) -> Result<()> {
    txn.open_table(table)?.insert(key, record)?;
    txn.open_table(EXPIRIES)?
        .insert((tag, expires.timestamp(), *key), ())?;
    Ok(())
}

/// Removes the records of `table` that expired before `now` (as new ones are made), found
/// through the expiry index: the work is what has expired, not the table.
fn prune(
    txn: &WriteTransaction,
    table: TableDefinition<&[u8; 32], &[u8]>,
    tag: u8,
    now: Timestamp,
) -> Result<()> {
    let mut index = txn.open_table(EXPIRIES)?;
    let expired: Vec<(u8, i64, [u8; 32])> = index
        .range((tag, i64::MIN, [0u8; 32])..(tag, now.timestamp(), [0u8; 32]))?
        .map(|e| e.map(|(k, _)| k.value()))
        .collect::<std::result::Result<_, _>>()?;
    let mut records = txn.open_table(table)?;
    for key in expired {
        records.remove(&key.2)?;
        index.remove(key)?;
    }
    Ok(())
}

/// Removes the records of `table` that `doomed` picks.
fn remove_where<T: serde::de::DeserializeOwned>(
    txn: &WriteTransaction,
    table: TableDefinition<&[u8; 32], &[u8]>,
    doomed: impl Fn(&T) -> bool,
) -> Result<()> {
    let mut table = txn.open_table(table)?;
    let mut stale = Vec::new();
    for entry in table.iter()? {
        let (k, v) = entry?;
        if doomed(&decode::<T>(v.value())?) {
            stale.push(*k.value());
        }
    }
    for k in stale {
        table.remove(&k)?;
    }
    Ok(())
}

// ---- access and refresh tokens ----

/// Whom a token was issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenGrant {
    pub user: Id,
    pub client: Id,
    pub expires: Timestamp,
}

#[derive(Serialize, Deserialize)]
struct Refresh {
    grant: TokenGrant,
    family: Id,
    used: bool,
    /// When the user signed in for the code that began the family.
    #[serde(default)]
    auth_time: Option<Timestamp>,
}

/// What a refresh token was good for: its grant and the sign-in behind the family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refreshed {
    pub grant: TokenGrant,
    pub auth_time: Option<Timestamp>,
}

/// Issues an access token (opaque, [`TOKEN_SECS`]).
pub fn issue_access(store: &Store, user: Id, client: Id, now: Timestamp) -> Result<String> {
    let token = random_token();
    let grant = TokenGrant {
        user,
        client,
        expires: clock::later(now, seconds(TOKEN_SECS)),
    };
    let txn = store.write()?;
    prune(&txn, ACCESS, TAG_ACCESS, now)?;
    let bytes = encode(&grant)?;
    insert_expiring(
        &txn,
        ACCESS,
        TAG_ACCESS,
        &secret_hash(&token),
        &bytes,
        grant.expires,
    )?;
    txn.commit()?;
    Ok(token)
}

/// The grant of a live access token.
pub fn access_grant(store: &Store, token: &str, now: Timestamp) -> Result<Option<TokenGrant>> {
    let txn = store.read()?;
    let table = txn.open_table(ACCESS)?;
    let Some(v) = table.get(&secret_hash(token))? else {
        return Ok(None);
    };
    let grant: TokenGrant = decode(v.value())?;
    Ok((grant.expires >= now).then_some(grant))
}

fn insert_refresh(
    txn: &WriteTransaction,
    user: Id,
    client: Id,
    family: Id,
    auth_time: Option<Timestamp>,
    now: Timestamp,
) -> Result<String> {
    let token = random_token();
    let record = Refresh {
        grant: TokenGrant {
            user,
            client,
            expires: clock::later(now, seconds(REFRESH_SECS)),
        },
        family,
        used: false,
        auth_time,
    };
    let (bytes, expires) = (encode(&record)?, record.grant.expires);
    insert_expiring(
        txn,
        REFRESH,
        TAG_REFRESH,
        &secret_hash(&token),
        &bytes,
        expires,
    )?;
    Ok(token)
}

/// Issues the first refresh token of a new family, for a user who signed in at `auth_time`.
pub fn issue_refresh(
    store: &Store,
    user: Id,
    client: Id,
    auth_time: Option<Timestamp>,
    now: Timestamp,
) -> Result<String> {
    let txn = store.write()?;
    prune(&txn, REFRESH, TAG_REFRESH, now)?;
    let token = insert_refresh(&txn, user, client, Id::new(), auth_time, now)?;
    txn.commit()?;
    Ok(token)
}

/// Uses a refresh token: it stops working and a new one of its family is returned with its
/// grant. A token used before revokes its family (every token of it then fails).
pub fn rotate_refresh(
    store: &Store,
    token: &str,
    client: Id,
    now: Timestamp,
) -> Result<Result<(Refreshed, String), &'static str>> {
    let txn = store.write()?;
    let key = secret_hash(token);
    let record: Option<Refresh> = {
        let table = txn.open_table(REFRESH)?;
        let found = table.get(&key)?;
        match found {
            Some(v) => Some(decode(v.value())?),
            None => None,
        }
    };
    let Some(mut record) = record else {
        return Ok(Err("the refresh token is unknown"));
    };
    if record.grant.client != client {
        return Ok(Err("the refresh token was issued to another client"));
    }
    let revoked = txn
        .open_table(REVOKED_FAMILIES)?
        .get(record.family.0)?
        .is_some();
    if record.used {
        txn.open_table(REVOKED_FAMILIES)?
            .insert(record.family.0, &[][..])?;
        txn.commit()?;
        return Ok(Err(
            "the refresh token was used before; its family is revoked",
        ));
    }
    if revoked {
        return Ok(Err("the refresh token's family is revoked"));
    }
    if record.grant.expires < now {
        return Ok(Err("the refresh token has expired"));
    }
    record.used = true;
    txn.open_table(REFRESH)?
        .insert(&key, encode(&record)?.as_slice())?;
    let (user, family, auth_time) = (record.grant.user, record.family, record.auth_time);
    let new = insert_refresh(&txn, user, client, family, auth_time, now)?;
    txn.commit()?;
    let refreshed = Refreshed {
        grant: record.grant,
        auth_time,
    };
    Ok(Ok((refreshed, new)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::domains::open_store(dir.path()).unwrap();
        (dir, store)
    }

    fn grant(client: Id, verifier: &str) -> CodeGrant {
        CodeGrant {
            client,
            user: Id::new(),
            redirect_uri: "http://x.localhost/cb".into(),
            challenge: s256(verifier),
            nonce: Some("n".into()),
            auth_time: None,
            expires: chrono::Utc::now(),
        }
    }

    const VERIFIER: &str = "0123456789012345678901234567890123456789abc";

    #[test]
    fn a_code_is_good_once_for_its_client_uri_and_verifier() {
        let (_d, store) = store();
        let now = chrono::Utc::now();
        let client = Id::new();
        let g = grant(client, VERIFIER);
        let code = issue_code(&store, g.clone(), now).unwrap();
        let ok = redeem_code(&store, &code, client, &g.redirect_uri, VERIFIER, now)
            .unwrap()
            .unwrap();
        assert_eq!((ok.user, ok.nonce.as_deref()), (g.user, Some("n")));
        let again = redeem_code(&store, &code, client, &g.redirect_uri, VERIFIER, now).unwrap();
        assert!(again.is_err(), "replayed");

        let refused = |client2: Id, uri: &str, verifier: &str, at: Timestamp| {
            let code = issue_code(&store, g.clone(), now).unwrap();
            redeem_code(&store, &code, client2, uri, verifier, at)
                .unwrap()
                .unwrap_err()
        };
        assert!(refused(Id::new(), &g.redirect_uri, VERIFIER, now).contains("another client"));
        assert!(refused(client, "http://x.localhost/other", VERIFIER, now).contains("redirect"));
        let wrong = "x".repeat(43);
        assert!(refused(client, &g.redirect_uri, &wrong, now).contains("PKCE"));
        assert!(refused(client, &g.redirect_uri, "", now).contains("PKCE"));
        let late = now + chrono::Duration::seconds(CODE_SECS + 1);
        assert!(refused(client, &g.redirect_uri, VERIFIER, late).contains("expired"));

        // Codes never presented go when they have expired and another is made.
        let unused = issue_code(&store, g.clone(), now).unwrap();
        issue_code(&store, g.clone(), late).unwrap();
        let later = redeem_code(&store, &unused, client, &g.redirect_uri, VERIFIER, now).unwrap();
        assert_eq!(
            later.unwrap_err(),
            "the code is unknown or was used already"
        );
    }

    #[test]
    fn pkce_s256_is_rfc_7636s() {
        // RFC 7636, appendix B.
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(pkce_shape(VERIFIER, 43));
        assert!(!pkce_shape("short", 43));
        assert!(!pkce_shape(&"a".repeat(129), 43));
        assert!(!pkce_shape(&format!("{}+", &VERIFIER[..43]), 43));
    }

    #[test]
    fn a_refresh_token_rotates_and_its_reuse_revokes_the_family() {
        let (_d, store) = store();
        let now = chrono::Utc::now();
        let (user, client) = (Id::new(), Id::new());
        let signed_in = now - chrono::Duration::seconds(30);
        let first = issue_refresh(&store, user, client, Some(signed_in), now).unwrap();
        assert!(
            rotate_refresh(&store, &first, Id::new(), now)
                .unwrap()
                .is_err()
        );
        let (g, second) = rotate_refresh(&store, &first, client, now)
            .unwrap()
            .unwrap();
        assert_eq!((g.grant.user, g.grant.client), (user, client));
        assert_eq!(g.auth_time, Some(signed_in), "the family keeps its sign-in");
        let (_, third) = rotate_refresh(&store, &second, client, now)
            .unwrap()
            .unwrap();
        // The first comes back: the family is revoked, the newest token with it.
        assert!(
            rotate_refresh(&store, &first, client, now)
                .unwrap()
                .is_err()
        );
        assert!(
            rotate_refresh(&store, &third, client, now)
                .unwrap()
                .is_err()
        );
        assert!(
            rotate_refresh(&store, "nope", client, now)
                .unwrap()
                .is_err()
        );
        let other = issue_refresh(&store, user, client, None, now).unwrap();
        let late = now + chrono::Duration::seconds(REFRESH_SECS + 1);
        assert_eq!(
            rotate_refresh(&store, &other, client, late).unwrap().err(),
            Some("the refresh token has expired")
        );
        // Expired ones go when a new family starts.
        issue_refresh(&store, user, client, None, late).unwrap();
        assert_eq!(
            rotate_refresh(&store, &other, client, late).unwrap().err(),
            Some("the refresh token is unknown")
        );
    }

    fn count(store: &Store, def: TableDefinition<&[u8; 32], &[u8]>) -> u64 {
        store
            .read()
            .unwrap()
            .open_table(def)
            .unwrap()
            .len()
            .unwrap()
    }

    #[test]
    fn expired_records_are_pruned_through_the_index_and_live_ones_stay() {
        let (_d, store) = store();
        let t0 = chrono::Utc::now();
        let (user, client) = (Id::new(), Id::new());
        for _ in 0..5 {
            issue_refresh(&store, user, client, None, t0).unwrap();
            issue_access(&store, user, client, t0).unwrap();
            issue_code(&store, grant(client, VERIFIER), t0).unwrap();
        }
        // A minute later the codes are gone, the tokens stay.
        let t1 = t0 + chrono::Duration::seconds(CODE_SECS + 1);
        issue_code(&store, grant(client, VERIFIER), t1).unwrap();
        assert_eq!(count(&store, CODES), 1);
        issue_access(&store, user, client, t1).unwrap();
        assert_eq!(count(&store, ACCESS), 6);
        // Past the access tokens' life, and then the refresh tokens'.
        let t2 = t0 + chrono::Duration::seconds(TOKEN_SECS + 1);
        let live = issue_access(&store, user, client, t2).unwrap();
        assert_eq!(count(&store, ACCESS), 2, "those of t1 and t2");
        assert!(access_grant(&store, &live, t2).unwrap().is_some());
        let t3 = t0 + chrono::Duration::seconds(REFRESH_SECS + 1);
        let kept = issue_refresh(&store, user, client, None, t3).unwrap();
        assert_eq!(count(&store, REFRESH), 1);
        assert!(rotate_refresh(&store, &kept, client, t3).unwrap().is_ok());

        // A store whose index is empty is indexed when it opens.
        let txn = store.write().unwrap();
        let rows = {
            let mut index = txn.open_table(EXPIRIES).unwrap();
            let rows = index.len().unwrap();
            index.retain(|_, _| false).unwrap();
            rows
        };
        index_expiries(&txn).unwrap();
        let reindexed = txn.open_table(EXPIRIES).unwrap().len().unwrap();
        txn.commit().unwrap();
        let records = count(&store, CODES) + count(&store, ACCESS) + count(&store, REFRESH);
        assert_eq!(reindexed, records);
        assert!(
            rows >= records,
            "stale entries of redeemed codes may linger until they expire"
        );
    }

    #[test]
    fn access_tokens_end_and_are_stored_hashed() {
        let (_d, store) = store();
        let now = chrono::Utc::now();
        let (user, client) = (Id::new(), Id::new());
        let token = issue_access(&store, user, client, now).unwrap();
        let g = access_grant(&store, &token, now).unwrap().unwrap();
        assert_eq!((g.user, g.client), (user, client));
        let late = now + chrono::Duration::seconds(TOKEN_SECS + 1);
        assert!(access_grant(&store, &token, late).unwrap().is_none());
        assert!(access_grant(&store, "other", now).unwrap().is_none());
        let stored = |token: &str| {
            let txn = store.read().unwrap();
            let table = txn.open_table(ACCESS).unwrap();
            table.get(&secret_hash(token)).unwrap().is_some()
        };
        assert!(stored(&token));
        // Expired ones go as new ones come.
        let newer = issue_access(&store, user, client, late).unwrap();
        assert!(!stored(&token) && stored(&newer));
    }

    #[test]
    fn client_secrets_are_replaced_and_compared_whole() {
        let (_d, store) = store();
        let client = Id::new();
        assert!(!client_secret_matches(&store, client, "").unwrap());
        let a = new_client_secret(&store, client).unwrap();
        assert!(client_secret_matches(&store, client, &a).unwrap());
        assert!(!client_secret_matches(&store, client, &a[..42]).unwrap());
        let b = new_client_secret(&store, client).unwrap();
        assert!(!client_secret_matches(&store, client, &a).unwrap());
        assert!(client_secret_matches(&store, client, &b).unwrap());
        assert!(!client_secret_matches(&store, Id::new(), &b).unwrap());
    }

    #[test]
    fn a_forgotten_client_leaves_no_secret_consent_code_or_token() {
        let (_d, store) = store();
        let now = chrono::Utc::now();
        let (gone, kept, user) = (Id::new(), Id::new(), Id::new());
        let mut held = Vec::new();
        for client in [gone, kept] {
            let secret = new_client_secret(&store, client).unwrap();
            give_consent(&store, user, client).unwrap();
            let code = issue_code(&store, grant(client, VERIFIER), now).unwrap();
            let access = issue_access(&store, user, client, now).unwrap();
            let refresh = issue_refresh(&store, user, client, None, now).unwrap();
            held.push((client, secret, code, access, refresh));
        }
        forget_client(&store, gone).unwrap();
        for (client, secret, code, access, refresh) in held {
            let live = client == kept;
            assert_eq!(
                client_secret_matches(&store, client, &secret).unwrap(),
                live
            );
            assert_eq!(has_consent(&store, user, client).unwrap(), live);
            assert_eq!(access_grant(&store, &access, now).unwrap().is_some(), live);
            assert_eq!(
                rotate_refresh(&store, &refresh, client, now)
                    .unwrap()
                    .is_ok(),
                live
            );
            let redeemed = redeem_code(
                &store,
                &code,
                client,
                "http://x.localhost/cb",
                VERIFIER,
                now,
            );
            assert_eq!(redeemed.unwrap().is_ok(), live);
        }
    }

    #[test]
    fn a_reauth_ticket_fits_its_own_request_only_while_it_lives() {
        let (_d, store) = store();
        let now = chrono::Utc::now();
        let client = Id::new();
        let (uri, challenge) = ("http://x.localhost/cb", s256(VERIFIER));
        let ticket = reauth_ticket(&store, client, uri, &challenge, now).unwrap();
        let asked =
            |t: &str, c: Id, u: &str, ch: &str, at| reauth_asked(&store, t, c, u, ch, at).unwrap();
        let micros = chrono::DateTime::from_timestamp_micros(now.timestamp_micros());
        assert_eq!(asked(&ticket, client, uri, &challenge, now), micros);
        assert_eq!(asked(&ticket, Id::new(), uri, &challenge, now), None);
        assert_eq!(
            asked(&ticket, client, "http://x.localhost/other", &challenge, now),
            None
        );
        assert_eq!(asked(&ticket, client, uri, "other", now), None);
        for forged in ["made-up", "0.AAAA", "", "."] {
            assert_eq!(
                asked(forged, client, uri, &challenge, now),
                None,
                "{forged}"
            );
        }
        // Another time under the same MAC: refused.
        let (_, mac) = ticket.split_once('.').unwrap();
        let earlier = format!("{}.{mac}", now.timestamp_micros() - 1_000_000);
        assert_eq!(asked(&earlier, client, uri, &challenge, now), None);
        let late = now + chrono::Duration::seconds(REAUTH_SECS + 1);
        assert_eq!(asked(&ticket, client, uri, &challenge, late), None);
        // Another store (another key): refused.
        let (_d2, other) = super::tests::store();
        assert_eq!(
            reauth_asked(&other, &ticket, client, uri, &challenge, now).unwrap(),
            None
        );
    }

    #[test]
    fn consent_is_per_user_and_client() {
        let (_d, store) = store();
        let (user, client) = (Id::new(), Id::new());
        assert!(!has_consent(&store, user, client).unwrap());
        give_consent(&store, user, client).unwrap();
        assert!(has_consent(&store, user, client).unwrap());
        assert!(!has_consent(&store, Id::new(), client).unwrap());
        assert!(!has_consent(&store, user, Id::new()).unwrap());
    }

    #[test]
    fn rotated_keys_still_verify_their_tokens_until_those_expire() {
        let (_d, store) = store();
        let now = chrono::Utc::now();
        let claims = serde_json::json!({"sub": "u"});
        let old = sign(&store, &claims, now).unwrap();
        assert_eq!(verify(&store, &old, now).unwrap(), Some(claims.clone()));
        let old_kid = public_keys(&store, now).unwrap()[0].kid.clone();
        let new_kid = rotate_key(&store, now).unwrap();
        let new = sign(&store, &claims, now).unwrap();
        let kids: Vec<String> = public_keys(&store, now)
            .unwrap()
            .into_iter()
            .map(|k| k.kid)
            .collect();
        assert!(
            kids.contains(&old_kid) && kids.contains(&new_kid),
            "{kids:?}"
        );
        assert!(verify(&store, &old, now).unwrap().is_some());
        assert!(verify(&store, &new, now).unwrap().is_some());
        // Tampered: refused.
        let mut bad = new.clone();
        bad.replace_range(bad.len() - 2.., "AA");
        assert!(verify(&store, &bad, now).unwrap().is_none());
        // Once the old key's tokens have expired, it leaves the JWKS (and is dropped at the
        // next rotation).
        let later = now + chrono::Duration::seconds(TOKEN_SECS + 1);
        let kids: Vec<String> = public_keys(&store, later)
            .unwrap()
            .into_iter()
            .map(|k| k.kid)
            .collect();
        assert_eq!(kids, vec![new_kid.clone()]);
        assert!(verify(&store, &old, later).unwrap().is_none());
        let jwk = public_keys(&store, now).unwrap()[0].jwk();
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(jwk["x"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(jwk["y"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
    }

    fn kids(store: &Store, at: Timestamp) -> Vec<String> {
        let mut kids: Vec<String> = public_keys(store, at)
            .unwrap()
            .into_iter()
            .map(|k| k.kid)
            .collect();
        kids.sort();
        kids
    }

    fn kid_of(token: &str) -> String {
        let header = token.split('.').next().unwrap();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        header["kid"].as_str().unwrap().to_owned()
    }

    #[test]
    fn the_jwks_holds_each_key_before_it_signs() {
        let (_d, store) = store();
        let t0 = chrono::Utc::now();
        let at = |secs: i64| t0 + chrono::Duration::seconds(secs);
        let claims = serde_json::json!({"sub": "u"});
        // A relying party may fetch the JWKS before anyone signs in: the first key is there,
        // and it signs the first token.
        let first = kids(&store, t0);
        assert_eq!(first.len(), 1);
        assert_eq!(kid_of(&sign(&store, &claims, at(1)).unwrap()), first[0]);

        // Until its successor is due, the JWKS holds the one key.
        let before = KEY_MAX_AGE_SECS - KEY_PUBLISHED_AHEAD_SECS - 1;
        assert_eq!(kids(&store, at(before)), first);
        // Then the successor is published while the first key still signs.
        let published = kids(&store, at(before + 2));
        assert_eq!(published.len(), 2);
        let next = published.iter().find(|k| **k != first[0]).unwrap().clone();
        assert_eq!(
            kid_of(&sign(&store, &claims, at(before + 3)).unwrap()),
            first[0]
        );
        // The successor signs once it has been published for the whole lead (here a second
        // past the first key's 30 days, as it was published a second late); the first key is
        // served while the tokens it signed live.
        let switch = before + 2 + KEY_PUBLISHED_AHEAD_SECS;
        assert!(switch >= KEY_MAX_AGE_SECS);
        let late = sign(&store, &claims, at(switch - 1)).unwrap();
        assert_eq!(kid_of(&late), first[0]);
        let switched = sign(&store, &claims, at(switch)).unwrap();
        assert_eq!(kid_of(&switched), next);
        assert_eq!(kids(&store, at(switch)), published);
        assert!(verify(&store, &late, at(switch)).unwrap().is_some());
        assert_eq!(
            kids(&store, at(switch + TOKEN_SECS + 1)),
            vec![next.clone()]
        );

        // A server that was off past a key's end still publishes the successor ahead of use.
        let long_after = 3 * KEY_MAX_AGE_SECS;
        let token = sign(&store, &claims, at(long_after)).unwrap();
        assert_eq!(kid_of(&token), next, "no unpublished key signs");
        let third = kids(&store, at(long_after));
        assert_eq!(third.len(), 2);
        let third = third.into_iter().find(|k| *k != next).unwrap();
        let due = long_after + KEY_PUBLISHED_AHEAD_SECS;
        assert_eq!(kid_of(&sign(&store, &claims, at(due - 1)).unwrap()), next);
        assert_eq!(kid_of(&sign(&store, &claims, at(due)).unwrap()), third);
    }

    #[test]
    fn a_clock_stepped_back_past_a_switch_signs_with_a_published_key() {
        let (_d, store) = store();
        let t0 = chrono::Utc::now();
        let at = |secs: i64| t0 + chrono::Duration::seconds(secs);
        let claims = serde_json::json!({"sub": "u"});
        let first = kids(&store, t0);
        let published = kids(&store, at(KEY_MAX_AGE_SECS));
        let switch = KEY_MAX_AGE_SECS + KEY_PUBLISHED_AHEAD_SECS;
        let next = kid_of(&sign(&store, &claims, at(switch)).unwrap());
        assert!(!first.contains(&next) && published.contains(&next));
        // The clock steps back before the switch: the first key is retired, the successor's
        // time has not come; it signs all the same, and no unpublished key appears.
        let back = kid_of(&sign(&store, &claims, at(switch - 60)).unwrap());
        assert_eq!(back, next);
        assert_eq!(kids(&store, at(switch - 60)), published);
        // An administrator's rotation then retires that key (it signed) rather than drop it.
        let rotated = rotate_key(&store, at(switch - 59)).unwrap();
        let served = kids(&store, at(switch - 58));
        assert!(
            served.contains(&next) && served.contains(&rotated),
            "{served:?}"
        );
    }

    #[test]
    fn an_administrators_rotation_signs_at_once_and_drops_an_unused_successor() {
        let (_d, store) = store();
        let t0 = chrono::Utc::now();
        let at = |secs: i64| t0 + chrono::Duration::seconds(secs);
        let claims = serde_json::json!({"sub": "u"});
        let first = kids(&store, t0)[0].clone();
        let ahead = KEY_MAX_AGE_SECS - KEY_PUBLISHED_AHEAD_SECS + 1;
        let published = kids(&store, at(ahead));
        assert_eq!(published.len(), 2);
        let rotated = rotate_key(&store, at(ahead + 1)).unwrap();
        assert_eq!(
            kid_of(&sign(&store, &claims, at(ahead + 2)).unwrap()),
            rotated
        );
        let mut expected = vec![first, rotated];
        expected.sort();
        assert_eq!(kids(&store, at(ahead + 2)), expected);
    }

    #[test]
    fn the_issuer_is_the_public_url_else_the_listeners_origin() {
        assert_eq!(
            issuer(
                "https://dtaas.example.org/",
                true,
                "0.0.0.0:5000".parse().unwrap()
            ),
            "https://dtaas.example.org"
        );
        assert_eq!(
            issuer("", false, "127.0.0.1:5000".parse().unwrap()),
            "http://127.0.0.1:5000"
        );
        assert_eq!(
            issuer("", true, "0.0.0.0:443".parse().unwrap()),
            "https://localhost"
        );
        assert_eq!(
            issuer("", true, "[::1]:8443".parse().unwrap()),
            "https://[::1]:8443"
        );
    }
}
