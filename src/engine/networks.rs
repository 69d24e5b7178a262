//! Networks between servables. Each servable has a bridge network of its own
//! (`dtaas-srv-<servable id>`), a small subnet carved from `servables.subnet_pool`. Its
//! container is on it, and so is the container of every servable that holds READ or REQUEST on
//! it (`domains::servables::reachable`), joined when the access appears and left when it goes.
//! Nothing else shares a network: a tenant's container reaches another's only when granted.
//! Docker isolates bridge networks from each other; the appliance (the host) reaches them all.

use super::{Engine, engine_error, is_not_found};
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use bollard::Docker;
use bollard::models::{
    Ipam, IpamConfig, NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest,
};
use bollard::query_parameters::ListNetworksOptions;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use tokio::sync::Mutex;

/// How many subnets a network's creation tries before it gives up.
const CREATE_ATTEMPTS: usize = 16;

/// An IPv4 network: its first address and prefix length.
pub type Subnet = (Ipv4Addr, u8);

/// The network of a servable.
pub fn network_name(servable: Id) -> String {
    format!("dtaas-srv-{servable}")
}

fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

/// Whether two networks share an address.
fn overlaps(a: Subnet, b: Subnet) -> bool {
    let shorter = mask(a.1.min(b.1));
    u32::from(a.0) & shorter == u32::from(b.0) & shorter
}

/// The first `prefix`-long network inside `pool` that shares no address with `used`.
pub fn free_subnet(pool: Subnet, prefix: u8, used: &[Subnet]) -> Option<Subnet> {
    if prefix < pool.1 || prefix > 30 {
        return None;
    }
    let start = u32::from(pool.0) & mask(pool.1);
    let step = 1u64 << (32 - u32::from(prefix));
    let count = 1u64 << u32::from(prefix - pool.1);
    (0..count)
        .map(|i| (u64::from(start) + i * step) as u32)
        .map(|n| (Ipv4Addr::from(n), prefix))
        .find(|candidate| !used.iter().any(|u| overlaps(*candidate, *u)))
}

fn parse_subnet(text: &str) -> Option<Subnet> {
    match crate::core::config::parse_cidr(text)? {
        (IpAddr::V4(addr), prefix) => Some((addr, prefix)),
        (IpAddr::V6(_), _) => None,
    }
}

/// Makes, joins and removes servable networks on the engine.
pub struct Networks {
    engine: Arc<Engine>,
    installation: Id,
    pool: Subnet,
    prefix: u8,
    /// Networks are made one at a time, so two never pick the same subnet.
    creating: Mutex<()>,
}

impl Networks {
    /// `pool` and `prefix` come from `servables.subnet_pool` / `subnet_prefix` (checked when
    /// the configuration loads).
    pub fn new(engine: Arc<Engine>, installation: Id, pool: &str, prefix: u8) -> Result<Networks> {
        let pool = parse_subnet(pool)
            .ok_or_else(|| Error::internal(format!("servables.subnet_pool {pool:?}")))?;
        Ok(Networks {
            engine,
            installation,
            pool,
            prefix,
            creating: Mutex::new(()),
        })
    }

    /// The servable's network, made when missing; returns its name.
    pub async fn ensure(&self, servable: Id) -> Result<String> {
        let docker = self.engine.client().await?;
        let name = network_name(servable);
        let _one_at_a_time = self.creating.lock().await;
        match docker.inspect_network(&name, None).await {
            Ok(_) => return Ok(name),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(engine_error("inspecting a servable network", e)),
        }
        // Another server on the same engine may take a subnet between our look and our
        // create: then the engine refuses the overlap, and the next free one is tried.
        let mut taken = Vec::new();
        for _ in 0..CREATE_ATTEMPTS {
            let mut used = self.used_subnets(&docker).await?;
            used.extend_from_slice(&taken);
            let subnet = free_subnet(self.pool, self.prefix, &used).ok_or_else(|| {
                Error::Unavailable(format!(
                    "no free /{} network left in servables.subnet_pool ({}/{})",
                    self.prefix, self.pool.0, self.pool.1
                ))
            })?;
            match self.create(&docker, &name, servable, subnet).await {
                Ok(()) => return Ok(name),
                Err(bollard::errors::Error::DockerResponseServerError { message, .. })
                    if message.contains("overlap") =>
                {
                    taken.push(subnet);
                }
                Err(e) => return Err(engine_error("creating a servable network", e)),
            }
        }
        Err(Error::Unavailable(
            "no servable network could be made: other networks keep taking the free subnets".into(),
        ))
    }

    async fn create(
        &self,
        docker: &Docker,
        name: &str,
        servable: Id,
        subnet: Subnet,
    ) -> Result<(), bollard::errors::Error> {
        let gateway = Ipv4Addr::from(u32::from(subnet.0) + 1);
        let request = NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".into()),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(format!("{}/{}", subnet.0, subnet.1)),
                    gateway: Some(gateway.to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            labels: Some(super::labels(
                &self.installation,
                &[
                    ("dtaas.kind", "servable-network"),
                    ("dtaas.servable", &servable.to_string()),
                ],
            )),
            ..Default::default()
        };
        docker.create_network(request).await.map(|_| ())
    }

    /// Every IPv4 subnet the engine's networks use (ours and anyone else's).
    async fn used_subnets(&self, docker: &Docker) -> Result<Vec<Subnet>> {
        let networks = docker
            .list_networks(None::<ListNetworksOptions>)
            .await
            .map_err(|e| engine_error("listing networks", e))?;
        Ok(networks
            .into_iter()
            .filter_map(|n| n.ipam?.config)
            .flatten()
            .filter_map(|c| parse_subnet(c.subnet.as_deref()?))
            .collect())
    }

    /// The names of the containers on the servable's network (none when it does not exist).
    pub async fn members(&self, docker: &Docker, servable: Id) -> Result<HashSet<String>> {
        match docker.inspect_network(&network_name(servable), None).await {
            Ok(n) => Ok(n
                .containers
                .unwrap_or_default()
                .into_values()
                .filter_map(|c| c.name)
                .collect()),
            Err(e) if is_not_found(&e) => Ok(HashSet::new()),
            Err(e) => Err(engine_error("inspecting a servable network", e)),
        }
    }

    /// Puts a container on the servable's network (already there is fine).
    pub async fn connect(&self, docker: &Docker, servable: Id, container: &str) -> Result<()> {
        let request = NetworkConnectRequest {
            container: container.to_owned(),
            endpoint_config: None,
        };
        match docker
            .connect_network(&network_name(servable), request)
            .await
        {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { message, .. })
                if message.contains("already exists") =>
            {
                Ok(())
            }
            Err(e) => Err(engine_error("joining a servable network", e)),
        }
    }

    /// Takes a container off the servable's network (gone already is fine).
    pub async fn disconnect(&self, docker: &Docker, servable: Id, container: &str) -> Result<()> {
        let request = NetworkDisconnectRequest {
            container: container.to_owned(),
            force: Some(true),
        };
        match docker
            .disconnect_network(&network_name(servable), request)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { message, .. })
                if message.contains("not connected") =>
            {
                Ok(())
            }
            Err(e) => Err(engine_error("leaving a servable network", e)),
        }
    }

    /// Removes a servable's network (its containers removed first); a missing one is fine.
    pub async fn remove(&self, docker: &Docker, servable: Id) -> Result<()> {
        match docker.remove_network(&network_name(servable)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(engine_error("removing a servable network", e)),
        }
    }

    /// Removes the networks of this installation's servables that `keep` refuses (what a crash
    /// left of deleted servables). One that cannot be removed does not keep the others: each
    /// is tried, and the first failure is returned after the last.
    pub async fn remove_orphans(&self, docker: &Docker, keep: impl Fn(Id) -> bool) -> Result<()> {
        let filters: HashMap<String, Vec<String>> = [(
            "label".to_owned(),
            vec![
                format!("dtaas.installation={}", self.installation),
                "dtaas.kind=servable-network".to_owned(),
            ],
        )]
        .into();
        let options = bollard::query_parameters::ListNetworksOptionsBuilder::new()
            .filters(&filters)
            .build();
        let networks = docker
            .list_networks(Some(options))
            .await
            .map_err(|e| engine_error("listing networks", e))?;
        let mut first_failure = None;
        for n in networks {
            let servable = n
                .labels
                .as_ref()
                .and_then(|l| l.get("dtaas.servable"))
                .and_then(|s| Id::parse(s));
            if let Some(servable) = servable
                && !keep(servable)
            {
                tracing::info!(%servable, "removing the network of a servable that is gone");
                if let Err(e) = self.remove(docker, servable).await {
                    tracing::warn!(%servable, "cannot remove the network: {e}");
                    first_failure.get_or_insert(e);
                }
            }
        }
        first_failure.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Subnet {
        parse_subnet(s).expect("a network")
    }

    #[test]
    fn subnets_are_carved_in_order_around_what_is_used() {
        let pool = net("10.213.0.0/16");
        assert_eq!(free_subnet(pool, 28, &[]), Some(net("10.213.0.0/28")));
        assert_eq!(
            free_subnet(pool, 28, &[net("10.213.0.0/28"), net("10.213.0.16/28")]),
            Some(net("10.213.0.32/28"))
        );
        // Someone else's /24 inside the pool is stepped over whole.
        assert_eq!(
            free_subnet(pool, 28, &[net("10.213.0.0/24")]),
            Some(net("10.213.1.0/28"))
        );
        // A network around the whole pool leaves nothing.
        assert_eq!(free_subnet(pool, 28, &[net("10.0.0.0/8")]), None);
        let full: Vec<Subnet> = (0..16u32)
            .map(|i| {
                (
                    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 9, 0, 0)) + i * 16),
                    28,
                )
            })
            .collect();
        assert_eq!(free_subnet(net("10.9.0.0/24"), 28, &full), None);
        assert_eq!(free_subnet(pool, 8, &[]), None, "larger than the pool");
    }

    #[test]
    fn overlap_is_symmetric_and_exact() {
        assert!(overlaps(net("10.0.0.0/8"), net("10.1.2.0/24")));
        assert!(overlaps(net("10.1.2.0/24"), net("10.0.0.0/8")));
        assert!(!overlaps(net("10.1.2.0/28"), net("10.1.2.16/28")));
        assert!(overlaps(net("0.0.0.0/0"), net("192.0.2.0/24")));
    }
}
