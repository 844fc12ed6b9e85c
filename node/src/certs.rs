//! Cluster certificates: one CA per cluster; certificates for its meta server, its
//! replicas, its clients and its operators.
//!
//! Identity *and role* live in the certificate's subject alternative name (a DNS name), so
//! mutual TLS alone tells a node who is on the other end and what it may be:
//!
//! * the meta server `id` of cluster `c`: `meta.n<id>.<c>.petrel`
//! * replica `id` of cluster `c`:         `replica.n<id>.<c>.petrel`
//! * a client of cluster `c`:             `client.<c>.petrel`
//! * an operator of cluster `c`:          `operator.<c>.petrel` (`petrel admin`)
//!
//! Nothing here parses certificate names. The transport knows which identity a peer
//! claims (its `Hello` and the address book) and asks rustls/webpki whether the verified
//! certificate is valid for that name ([`cert_is_valid_for`]), the same check TLS makes of
//! a server's name. A cluster's CA carries a *name constraint* (`<c>.petrel` only), so
//! webpki refuses, while verifying the chain, a certificate that a partner cluster's CA
//! (trusted for duplication) issued for one of our names: a CA vouches for its own cluster.
//!
//! `petrel certs` writes PEM files: `ca.pem`/`ca.key`, `node-<id>.pem`/`.key`,
//! `client-<i>.pem`/`.key`, `operator-<i>.pem`/`.key`. If `ca.key` already exists in the
//! output directory it is reused, so more certificates can be issued for a running cluster
//! (a CA issued before name constraints existed keeps working, without that protection:
//! re-issue it).
use anyhow::{bail, Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints,
};
use rustls::pki_types::{CertificateDer, ServerName};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The DNS suffix of every Petrel identity.
pub const SUFFIX: &str = "petrel";

/// What a node of the address book is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeRole {
    Meta,
    Replica,
}

impl std::fmt::Display for NodeRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeRole::Meta => "meta",
            NodeRole::Replica => "replica",
        })
    }
}

/// Who a certificate certifies (and a `Hello` claims) the peer is.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Identity {
    Node {
        cluster: String,
        id: u64,
        role: NodeRole,
    },
    Client {
        cluster: String,
    },
    Operator {
        cluster: String,
    },
}

impl Identity {
    pub fn cluster(&self) -> &str {
        match self {
            Identity::Node { cluster, .. }
            | Identity::Client { cluster }
            | Identity::Operator { cluster } => cluster,
        }
    }
    /// The SAN DNS name that certifies this identity.
    pub fn dns_name(&self) -> String {
        match self {
            Identity::Node { cluster, id, role } => node_name(cluster, *role, *id),
            Identity::Client { cluster } => client_name(cluster),
            Identity::Operator { cluster } => operator_name(cluster),
        }
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Node { cluster, id, role } => write!(f, "{role} {id} of cluster {cluster}"),
            Identity::Client { cluster } => write!(f, "a client of cluster {cluster}"),
            Identity::Operator { cluster } => write!(f, "an operator of cluster {cluster}"),
        }
    }
}

pub fn node_name(cluster: &str, role: NodeRole, id: u64) -> String {
    format!("{role}.n{id}.{cluster}.{SUFFIX}")
}

pub fn client_name(cluster: &str) -> String {
    format!("client.{cluster}.{SUFFIX}")
}

pub fn operator_name(cluster: &str) -> String {
    format!("operator.{cluster}.{SUFFIX}")
}

/// The DNS subtree a cluster's CA may certify.
pub fn cluster_domain(cluster: &str) -> String {
    format!("{cluster}.{SUFFIX}")
}

/// A cluster name must be one DNS label (it is embedded in certificate names).
pub fn check_cluster_name(cluster: &str) -> Result<()> {
    let ok = !cluster.is_empty()
        && cluster.len() <= 63
        && cluster
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !cluster.starts_with('-')
        && !cluster.ends_with('-');
    if !ok {
        bail!("cluster name {cluster:?} must be 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'");
    }
    Ok(())
}

/// Whether `cert` (an end-entity certificate whose chain TLS has already verified) is
/// valid for `identity`'s name: webpki's own subject-name check, the one rustls applies
/// to a server's name. A certificate that does not parse is valid for nothing.
pub fn cert_is_valid_for(cert: &CertificateDer<'_>, identity: &Identity) -> bool {
    let Ok(name) = ServerName::try_from(identity.dns_name()) else {
        return false;
    };
    match rustls::server::ParsedCertificate::try_from(cert) {
        Ok(parsed) => rustls::client::verify_server_name(&parsed, &name).is_ok(),
        Err(_) => false,
    }
}

// ---- issuing ----

fn ca_params(cluster: &str) -> Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("Petrel cluster CA {cluster}"));
    dn.push(DnType::OrganizationName, "Petrel");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    // This CA certifies names of its own cluster only: a node that trusts it for
    // duplication does not thereby let it speak for the node's own cluster.
    p.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![GeneralSubtree::DnsName(cluster_domain(cluster))],
        excluded_subtrees: Vec::new(),
    });
    Ok(p)
}

fn leaf_params(name: &str, common_name: String, server: bool) -> Result<CertificateParams> {
    let mut p = CertificateParams::new(vec![name.to_string()])?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "Petrel");
    p.distinguished_name = dn;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // Nodes both accept connections and dial their peers; clients only dial.
    p.extended_key_usages = if server {
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ]
    } else {
        vec![ExtendedKeyUsagePurpose::ClientAuth]
    };
    p.use_authority_key_identifier_extension = true;
    Ok(p)
}

/// What `petrel certs` wrote.
#[derive(Debug, Default)]
pub struct Issued {
    pub ca_cert: PathBuf,
    pub reused_ca: bool,
    pub nodes: Vec<(u64, NodeRole, PathBuf, PathBuf)>,
    pub clients: Vec<(PathBuf, PathBuf)>,
    pub operators: Vec<(PathBuf, PathBuf)>,
}

fn write_file(path: &Path, contents: &str, secret: bool) -> Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

pub fn node_cert_paths(dir: &Path, id: u64) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("node-{id}.pem")),
        dir.join(format!("node-{id}.key")),
    )
}

pub fn client_cert_paths(dir: &Path, i: usize) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("client-{i}.pem")),
        dir.join(format!("client-{i}.key")),
    )
}

pub fn operator_cert_paths(dir: &Path, i: usize) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("operator-{i}.pem")),
        dir.join(format!("operator-{i}.key")),
    )
}

/// What to issue: node certificates (id and role), client and operator certificates.
#[derive(Clone, Debug, Default)]
pub struct Wanted {
    pub nodes: Vec<(u64, NodeRole)>,
    pub clients: usize,
    pub operators: usize,
}

impl Wanted {
    /// A meta server `meta` and replicas `replicas`, with one client and one operator
    /// certificate.
    pub fn cluster(meta: u64, replicas: &[u64]) -> Wanted {
        let mut nodes = vec![(meta, NodeRole::Meta)];
        nodes.extend(replicas.iter().map(|r| (*r, NodeRole::Replica)));
        Wanted {
            nodes,
            clients: 1,
            operators: 1,
        }
    }
}

/// Issue a cluster's CA (or reuse the one in `out`), node, client and operator
/// certificates, as PEM files in `out`.
pub fn issue(cluster: &str, wanted: &Wanted, out: &Path) -> Result<Issued> {
    check_cluster_name(cluster)?;
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let (ca_cert_path, ca_key_path) = (out.join("ca.pem"), out.join("ca.key"));
    let params = ca_params(cluster)?;
    let reused_ca = ca_key_path.exists();
    let ca_key = if reused_ca {
        let pem = fs::read_to_string(&ca_key_path)
            .with_context(|| format!("cannot read {}", ca_key_path.display()))?;
        let key = KeyPair::from_pem(&pem)
            .with_context(|| format!("{} is not a PEM private key", ca_key_path.display()))?;
        if !ca_cert_path.exists() {
            bail!(
                "{} exists but {} does not",
                ca_key_path.display(),
                ca_cert_path.display()
            );
        }
        key
    } else {
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        write_file(&ca_key_path, &key.serialize_pem(), true)?;
        write_file(&ca_cert_path, &cert.pem(), false)?;
        key
    };
    // Re-creating the issuer from the same distinguished name and key yields certificates
    // that chain to the CA certificate already on disk.
    let issuer = Issuer::new(params, ca_key);
    let mut issued = Issued {
        ca_cert: ca_cert_path,
        reused_ca,
        ..Default::default()
    };
    let mut ids = std::collections::BTreeSet::new();
    for &(id, role) in &wanted.nodes {
        if !ids.insert(id) {
            bail!("node {id} is named twice");
        }
        let key = KeyPair::generate()?;
        let cert = leaf_params(
            &node_name(cluster, role, id),
            format!("Petrel {role} {id} ({cluster})"),
            true,
        )?
        .signed_by(&key, &issuer)?;
        let (cp, kp) = node_cert_paths(out, id);
        write_file(&kp, &key.serialize_pem(), true)?;
        write_file(&cp, &cert.pem(), false)?;
        issued.nodes.push((id, role, cp, kp));
    }
    for i in 0..wanted.clients {
        let key = KeyPair::generate()?;
        let cert = leaf_params(
            &client_name(cluster),
            format!("Petrel client {i} ({cluster})"),
            false,
        )?
        .signed_by(&key, &issuer)?;
        let (cp, kp) = client_cert_paths(out, i);
        write_file(&kp, &key.serialize_pem(), true)?;
        write_file(&cp, &cert.pem(), false)?;
        issued.clients.push((cp, kp));
    }
    for i in 0..wanted.operators {
        let key = KeyPair::generate()?;
        let cert = leaf_params(
            &operator_name(cluster),
            format!("Petrel operator {i} ({cluster})"),
            false,
        )?
        .signed_by(&key, &issuer)?;
        let (cp, kp) = operator_cert_paths(out, i);
        write_file(&kp, &key.serialize_pem(), true)?;
        write_file(&cp, &cert.pem(), false)?;
        issued.operators.push((cp, kp));
    }
    Ok(issued)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;

    fn der(path: &Path) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(path).expect("pem")
    }

    #[test]
    fn names() {
        assert_eq!(
            Identity::Node {
                cluster: "a".into(),
                id: 3,
                role: NodeRole::Replica
            }
            .dns_name(),
            "replica.n3.a.petrel"
        );
        assert_eq!(
            Identity::Node {
                cluster: "a".into(),
                id: 0,
                role: NodeRole::Meta
            }
            .dns_name(),
            "meta.n0.a.petrel"
        );
        assert_eq!(
            Identity::Operator {
                cluster: "a".into()
            }
            .dns_name(),
            "operator.a.petrel"
        );
        assert_eq!(
            Identity::Client {
                cluster: "b-2".into()
            }
            .dns_name(),
            "client.b-2.petrel"
        );
        assert!(check_cluster_name("alpha").is_ok());
        assert!(check_cluster_name("-x").is_err());
        assert!(check_cluster_name("a.b").is_err());
    }

    #[test]
    fn certificates_are_valid_for_their_identity_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let issued = issue("alpha", &Wanted::cluster(0, &[3]), dir.path()).expect("issue");
        assert!(!issued.reused_ca);
        let node = |id, role| Identity::Node {
            cluster: "alpha".into(),
            id,
            role,
        };
        let (client, operator) = (
            Identity::Client {
                cluster: "alpha".into(),
            },
            Identity::Operator {
                cluster: "alpha".into(),
            },
        );
        let replica = der(&issued.nodes[1].2);
        assert!(cert_is_valid_for(&replica, &node(3, NodeRole::Replica)));
        for other in [
            node(3, NodeRole::Meta),
            node(30, NodeRole::Replica),
            client.clone(),
            operator.clone(),
        ] {
            assert!(!cert_is_valid_for(&replica, &other), "{other}");
        }
        assert!(cert_is_valid_for(
            &der(&issued.nodes[0].2),
            &node(0, NodeRole::Meta)
        ));
        let c = der(&issued.clients[0].0);
        assert!(cert_is_valid_for(&c, &client) && !cert_is_valid_for(&c, &operator));
        let o = der(&issued.operators[0].0);
        assert!(cert_is_valid_for(&o, &operator) && !cert_is_valid_for(&o, &client));
        assert!(
            !cert_is_valid_for(
                &CertificateDer::from(vec![0x30, 0x03, 0x30, 0x01, 0x00]),
                &client
            ),
            "garbage is valid for nothing"
        );
        // A second run reuses the CA and its certificates still chain to the same CA file.
        let ca_before = fs::read(&issued.ca_cert).expect("ca");
        let again = issue(
            "alpha",
            &Wanted {
                nodes: vec![(4, NodeRole::Replica)],
                ..Default::default()
            },
            dir.path(),
        )
        .expect("again");
        assert!(again.reused_ca);
        assert_eq!(fs::read(&again.ca_cert).expect("ca"), ca_before);
        assert!(issue(
            "alpha",
            &Wanted {
                nodes: vec![(5, NodeRole::Replica), (5, NodeRole::Meta)],
                ..Default::default()
            },
            dir.path()
        )
        .is_err());
    }
}
