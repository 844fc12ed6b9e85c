//! TLS setup: this process's certificates, the QUIC client and server configurations
//! (rustls with ring, TLS 1.3, mutual authentication), and the name checks that turn a
//! verified certificate into an identity (`certs::cert_is_valid_for`: webpki's check).
use super::{Settings, ALPN};
use crate::certs::{cert_is_valid_for, Identity};
use anyhow::{bail, Context};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, VarInt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Certificates and key of this process.
pub struct TlsMaterial {
    pub roots: Vec<CertificateDer<'static>>,
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl TlsMaterial {
    /// Load PEM files: this cluster's CA, remote clusters' CAs, this process's chain + key.
    pub fn load(
        ca: &Path,
        remote_cas: &[PathBuf],
        cert: &Path,
        key: &Path,
    ) -> anyhow::Result<TlsMaterial> {
        let mut roots = Vec::new();
        for path in std::iter::once(ca).chain(remote_cas.iter().map(PathBuf::as_path)) {
            let certs = CertificateDer::pem_file_iter(path)
                .with_context(|| format!("cannot read CA certificate file {}", path.display()))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
            if certs.is_empty() {
                bail!("{} holds no certificate", path.display());
            }
            roots.extend(certs);
        }
        let chain = CertificateDer::pem_file_iter(cert)
            .with_context(|| format!("cannot read certificate file {}", cert.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("{} is not a PEM certificate file", cert.display()))?;
        if chain.is_empty() {
            bail!("{} holds no certificate", cert.display());
        }
        let key = PrivateKeyDer::from_pem_file(key)
            .with_context(|| format!("cannot read private key {}", key.display()))?;
        Ok(TlsMaterial { roots, chain, key })
    }

    /// Whether this process's own certificate is valid for `identity`.
    pub fn is_valid_for(&self, identity: &Identity) -> bool {
        self.chain
            .first()
            .is_some_and(|c| cert_is_valid_for(c, identity))
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn root_store(tls: &TlsMaterial) -> anyhow::Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for c in &tls.roots {
        roots
            .add(c.clone())
            .context("a CA certificate was refused")?;
    }
    Ok(Arc::new(roots))
}

fn quic_transport(s: &Settings) -> anyhow::Result<Arc<quinn::TransportConfig>> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(s.idle_timeout).context("idle timeout out of range")?,
    ));
    t.keep_alive_interval(Some(s.keep_alive));
    // Frames travel on unidirectional streams only.
    t.max_concurrent_bidi_streams(VarInt::from_u32(0));
    t.max_concurrent_uni_streams(VarInt::from_u32(16));
    Ok(Arc::new(t))
}

/// The dialing side's QUIC + TLS configuration (public for tools and tests that speak
/// the wire protocol directly).
pub fn client_config(tls: &TlsMaterial, s: &Settings) -> anyhow::Result<quinn::ClientConfig> {
    let mut c = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3 unavailable")?
        .with_root_certificates(root_store(tls)?)
        .with_client_auth_cert(tls.chain.clone(), tls.key.clone_key())
        .context("the certificate and key do not form a valid client identity")?;
    c.alpn_protocols = vec![ALPN.to_vec()];
    let mut cfg = quinn::ClientConfig::new(Arc::new(
        QuicClientConfig::try_from(c).context("QUIC client TLS config")?,
    ));
    cfg.transport_config(quic_transport(s)?);
    Ok(cfg)
}

pub(super) fn server_config(
    tls: &TlsMaterial,
    s: &Settings,
) -> anyhow::Result<quinn::ServerConfig> {
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(root_store(tls)?, provider())
            .build()
            .context("client certificate verifier")?;
    let mut c = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3 unavailable")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(tls.chain.clone(), tls.key.clone_key())
        .context("the certificate and key do not form a valid server identity")?;
    c.alpn_protocols = vec![ALPN.to_vec()];
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(
        QuicServerConfig::try_from(c).context("QUIC server TLS config")?,
    ));
    cfg.transport_config(quic_transport(s)?);
    Ok(cfg)
}

/// This process must hold the certificate of the identity it announces, or every peer
/// would refuse it: better a clear error at start.
pub(super) fn check_identity(tls: &TlsMaterial, mine: &Identity) -> anyhow::Result<()> {
    if !tls.is_valid_for(mine) {
        bail!(
            "this process is {mine} but its certificate is not valid for {}: peers would refuse it",
            mine.dns_name()
        );
    }
    Ok(())
}

/// A process outside the address book is an operator if its certificate says so, else a
/// client; a certificate that is neither is refused at start.
pub(super) fn client_side_identity(tls: &TlsMaterial, cluster: &str) -> anyhow::Result<Identity> {
    let operator = Identity::Operator {
        cluster: cluster.to_string(),
    };
    let client = Identity::Client {
        cluster: cluster.to_string(),
    };
    if tls.is_valid_for(&operator) {
        return Ok(operator);
    }
    check_identity(tls, &client)?;
    Ok(client)
}

/// The end-entity certificate the peer presented (TLS has verified its chain).
pub(super) fn peer_cert(conn: &Connection) -> Option<CertificateDer<'static>> {
    conn.peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .and_then(|chain| chain.first().cloned())
}

/// The node's QUIC endpoint configuration, with a stateless-reset key and a
/// connection-id key derived from its private key: the same across restarts. A peer (node
/// or client) still sending on a connection of this node's previous process then gets a
/// valid stateless reset from the new one (the new process recognises the old connection
/// ids as its own, and signs the reset as the old one did) and learns at once that the
/// connection is gone, instead of waiting out the idle timeout — which kept a restarted
/// node unreachable to clients for 5 s after it took over as primary.
pub fn endpoint_config(tls: &TlsMaterial) -> quinn::EndpointConfig {
    let secret = |label: &[u8]| {
        let mut material = label.to_vec();
        material.extend_from_slice(tls.key.secret_der());
        ring::digest::digest(&ring::digest::SHA256, &material)
    };
    let reset = secret(b"petrel stateless reset v1");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, reset.as_ref());
    let cid = secret(b"petrel connection ids v1");
    let mut cid_key = [0u8; 8];
    cid_key.copy_from_slice(&cid.as_ref()[..8]);
    let cid_key = u64::from_le_bytes(cid_key);
    let mut config = quinn::EndpointConfig::new(std::sync::Arc::new(key));
    config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    config
}
