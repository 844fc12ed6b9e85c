//! Cluster certificates: one CA per cluster, one certificate per node, client certificates.
//!
//! Identity lives in the certificate's subject alternative name (a DNS name), so mutual
//! TLS alone tells a node *who* is on the other end, not just "someone the CA signed":
//!
//! * node `id` of cluster `c`: `n<id>.<c>.petrel`
//! * a client of cluster `c`:  `client.<c>.petrel`
//!
//! A dialer verifies the server's certificate against the name the address book expects
//! (`n<id>.<c>.petrel`), and an acceptor maps the client certificate's SAN back to an
//! [`Identity`] and checks that the peer's `Hello` claims the same one (`transport.rs`).
//!
//! `petrel certs` writes PEM files: `ca.pem`/`ca.key`, `node-<id>.pem`/`.key`,
//! `client-<i>.pem`/`.key`. If `ca.key` already exists in the output directory it is
//! reused, so more node or client certificates can be issued for a running cluster.
use anyhow::{bail, Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The DNS suffix of every Petrel identity.
pub const SUFFIX: &str = "petrel";

/// Who a certificate (or a `Hello`) says the peer is.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Identity {
    Node { cluster: String, id: u64 },
    Client { cluster: String },
}

impl Identity {
    pub fn cluster(&self) -> &str {
        match self {
            Identity::Node { cluster, .. } | Identity::Client { cluster } => cluster,
        }
    }
    /// The SAN DNS name that certifies this identity.
    pub fn dns_name(&self) -> String {
        match self {
            Identity::Node { cluster, id } => node_name(cluster, *id),
            Identity::Client { cluster } => client_name(cluster),
        }
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Node { cluster, id } => write!(f, "node {id} of cluster {cluster}"),
            Identity::Client { cluster } => write!(f, "a client of cluster {cluster}"),
        }
    }
}

pub fn node_name(cluster: &str, id: u64) -> String {
    format!("n{id}.{cluster}.{SUFFIX}")
}

pub fn client_name(cluster: &str) -> String {
    format!("client.{cluster}.{SUFFIX}")
}

/// A cluster name must be one DNS label (it is embedded in certificate names).
pub fn check_cluster_name(cluster: &str) -> Result<()> {
    let ok = !cluster.is_empty()
        && cluster.len() <= 63
        && cluster.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !cluster.starts_with('-')
        && !cluster.ends_with('-');
    if !ok {
        bail!("cluster name {cluster:?} must be 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'");
    }
    Ok(())
}

/// Map a SAN DNS name back to an identity; `None` for anything that is not a Petrel name.
pub fn parse_name(dns: &str) -> Option<Identity> {
    let rest = dns.strip_suffix(SUFFIX)?.strip_suffix('.')?;
    let (first, cluster) = rest.split_once('.')?;
    if check_cluster_name(cluster).is_err() {
        return None;
    }
    let cluster = cluster.to_string();
    if first == "client" {
        return Some(Identity::Client { cluster });
    }
    let digits = first.strip_prefix('n')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    Some(Identity::Node { cluster, id: digits.parse().ok()? })
}

/// The Petrel identities named by a certificate's SAN DNS names.
pub fn cert_identities(der: &[u8]) -> Vec<Identity> {
    san_dns_names(der).iter().filter_map(|n| parse_name(n)).collect()
}

// ---- a minimal DER reader, just enough to list the SAN DNS names ----
//
// rustls/webpki validate the chain but do not expose the names; a full X.509 parser
// would be a large dependency for one field. The input is a certificate that webpki has
// already accepted; any irregularity here still just yields no names (never a panic).

/// One tag-length-value: (tag, content, rest).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&l0, rest) = rest.split_first()?;
    let (len, rest) = if l0 < 0x80 {
        (l0 as usize, rest)
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let bytes = rest.get(..n)?;
        (bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize), rest.get(n..)?)
    };
    Some((tag, rest.get(..len)?, rest.get(len..)?))
}

/// The elements of a constructed value's content.
fn elements(mut content: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let Some((tag, value, rest)) = tlv(content) else { break };
        out.push((tag, value));
        content = rest;
    }
    out
}

const SEQUENCE: u8 = 0x30;
const OID_SUBJECT_ALT_NAME: [u8; 3] = [0x55, 0x1d, 0x11];

/// The DNS names of a certificate's subject alternative name extension.
pub fn san_dns_names(der: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let Some((SEQUENCE, cert, _)) = tlv(der) else { return names };
    let Some((SEQUENCE, tbs, _)) = tlv(cert) else { return names };
    // Extensions are the explicitly tagged [3] element of the TBSCertificate.
    for (tag, value) in elements(tbs) {
        if tag != 0xa3 {
            continue;
        }
        let Some((SEQUENCE, exts, _)) = tlv(value) else { continue };
        for (tag, ext) in elements(exts) {
            if tag != SEQUENCE {
                continue;
            }
            let parts = elements(ext);
            let Some((0x06, oid)) = parts.first().copied() else { continue };
            if oid != OID_SUBJECT_ALT_NAME {
                continue;
            }
            // extnValue is the last element: an OCTET STRING holding GeneralNames.
            let Some((0x04, octets)) = parts.last().copied() else { continue };
            let Some((SEQUENCE, general_names, _)) = tlv(octets) else { continue };
            for (tag, name) in elements(general_names) {
                // dNSName is [2] IMPLICIT IA5String.
                if tag == 0x82 {
                    if let Ok(s) = std::str::from_utf8(name) {
                        names.push(s.to_string());
                    }
                }
            }
        }
    }
    names
}

// ---- issuing ----

fn ca_params(cluster: &str) -> Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("Petrel cluster CA {cluster}"));
    dn.push(DnType::OrganizationName, "Petrel");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
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
        vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth]
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
    pub nodes: Vec<(u64, PathBuf, PathBuf)>,
    pub clients: Vec<(PathBuf, PathBuf)>,
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
    let mut f = opts.open(path).with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(contents.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

pub fn node_cert_paths(dir: &Path, id: u64) -> (PathBuf, PathBuf) {
    (dir.join(format!("node-{id}.pem")), dir.join(format!("node-{id}.key")))
}

pub fn client_cert_paths(dir: &Path, i: usize) -> (PathBuf, PathBuf) {
    (dir.join(format!("client-{i}.pem")), dir.join(format!("client-{i}.key")))
}

/// Issue a cluster's CA (or reuse the one in `out`), node certificates and client
/// certificates, as PEM files in `out`.
pub fn issue(cluster: &str, nodes: &[u64], clients: usize, out: &Path) -> Result<Issued> {
    check_cluster_name(cluster)?;
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let (ca_cert_path, ca_key_path) = (out.join("ca.pem"), out.join("ca.key"));
    let params = ca_params(cluster)?;
    let reused_ca = ca_key_path.exists();
    let ca_key = if reused_ca {
        let pem = fs::read_to_string(&ca_key_path).with_context(|| format!("cannot read {}", ca_key_path.display()))?;
        let key = KeyPair::from_pem(&pem).with_context(|| format!("{} is not a PEM private key", ca_key_path.display()))?;
        if !ca_cert_path.exists() {
            bail!("{} exists but {} does not", ca_key_path.display(), ca_cert_path.display());
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
    let mut issued = Issued { ca_cert: ca_cert_path, reused_ca, ..Default::default() };
    for &id in nodes {
        let key = KeyPair::generate()?;
        let cert = leaf_params(&node_name(cluster, id), format!("Petrel node {id} ({cluster})"), true)?.signed_by(&key, &issuer)?;
        let (cp, kp) = node_cert_paths(out, id);
        write_file(&kp, &key.serialize_pem(), true)?;
        write_file(&cp, &cert.pem(), false)?;
        issued.nodes.push((id, cp, kp));
    }
    for i in 0..clients {
        let key = KeyPair::generate()?;
        let cert = leaf_params(&client_name(cluster), format!("Petrel client {i} ({cluster})"), false)?.signed_by(&key, &issuer)?;
        let (cp, kp) = client_cert_paths(out, i);
        write_file(&kp, &key.serialize_pem(), true)?;
        write_file(&cp, &cert.pem(), false)?;
        issued.clients.push((cp, kp));
    }
    Ok(issued)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{pem::PemObject, CertificateDer};

    #[test]
    fn names_round_trip() {
        let n = Identity::Node { cluster: "alpha".into(), id: 42 };
        assert_eq!(parse_name(&n.dns_name()), Some(n));
        let c = Identity::Client { cluster: "b-2".into() };
        assert_eq!(parse_name(&c.dns_name()), Some(c));
        for bad in ["n1.alpha.example", "x1.alpha.petrel", "n.alpha.petrel", "n01.alpha.petrel", "n1.Alpha.petrel", "n1.a.b.petrel", "petrel", ""] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
        assert!(check_cluster_name("alpha").is_ok());
        assert!(check_cluster_name("-x").is_err());
        assert!(check_cluster_name("a.b").is_err());
    }

    #[test]
    fn issue_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let issued = issue("alpha", &[0, 3], 1, dir.path()).expect("issue");
        assert!(!issued.reused_ca);
        let der = CertificateDer::from_pem_file(&issued.nodes[1].1).expect("pem");
        assert_eq!(cert_identities(&der), vec![Identity::Node { cluster: "alpha".into(), id: 3 }]);
        let der = CertificateDer::from_pem_file(&issued.clients[0].0).expect("pem");
        assert_eq!(cert_identities(&der), vec![Identity::Client { cluster: "alpha".into() }]);
        // The CA itself names no identity.
        let der = CertificateDer::from_pem_file(&issued.ca_cert).expect("pem");
        assert!(cert_identities(&der).is_empty());
        // A second run reuses the CA and its certificates still chain to the same CA file.
        let ca_before = fs::read(&issued.ca_cert).expect("ca");
        let again = issue("alpha", &[4], 0, dir.path()).expect("issue again");
        assert!(again.reused_ca);
        assert_eq!(fs::read(&again.ca_cert).expect("ca"), ca_before);
    }

    #[test]
    fn der_reader_survives_garbage() {
        assert!(san_dns_names(&[]).is_empty());
        assert!(san_dns_names(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_empty());
        assert!(san_dns_names(&[0x30, 0x03, 0x30, 0x01]).is_empty());
        let mut x = 7u32;
        for _ in 0..2000 {
            let bytes: Vec<u8> = (0..64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = san_dns_names(&bytes);
        }
    }
}
