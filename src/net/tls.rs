//! Cluster identity: a cluster CA issues every node a certificate that
//! names the node (DNS SAN) and serves both ends of mutual TLS. QUIC
//! endpoints accept only peers with a certificate from the cluster CA.
//!
//! Only the `ring` crypto provider is used (one provider in the tree; see
//! the dependency notes).

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::{Deserialize, Serialize};

/// ALPN of the hactor protocol.
pub const ALPN: &[u8] = b"hactor/1";

/// Why certificate material is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

fn err(context: &str, e: impl std::fmt::Display) -> TlsError {
    TlsError(format!("{context}: {e}"))
}

/// The cluster certificate authority (its key stays on the node that
/// created the cluster, or wherever the operator keeps it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterCa {
    pub cluster: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// One node's TLS identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeIdentity {
    pub node: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// The cluster CA certificate that peers must chain to.
    pub ca_pem: String,
}

fn ca_params(cluster: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, format!("hactor cluster {cluster}"));
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// What [`valid_node_name`] accepts, for error messages.
pub const NODE_NAME_RULE: &str = "1 to 63 characters: letters, digits and '-', neither first nor last";

pub use crate::core::types::valid_node_name;

impl ClusterCa {
    /// Creates a new cluster CA.
    pub fn generate(cluster: &str) -> Result<ClusterCa, TlsError> {
        let key = KeyPair::generate().map_err(|e| err("generating the CA key", e))?;
        let cert = ca_params(cluster)
            .self_signed(&key)
            .map_err(|e| err("signing the CA certificate", e))?;
        Ok(ClusterCa {
            cluster: cluster.to_string(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issues `node` its identity.
    pub fn issue(&self, node: &str) -> Result<NodeIdentity, TlsError> {
        if !valid_node_name(node) {
            return Err(TlsError(format!("invalid node name '{node}' ({NODE_NAME_RULE})")));
        }
        let ca_key = KeyPair::from_pem(&self.key_pem).map_err(|e| err("reading the CA key", e))?;
        let issuer = Issuer::new(ca_params(&self.cluster), ca_key);
        let mut params = CertificateParams::new(vec![node.to_string()]).map_err(|e| err("node certificate", e))?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, node);
        params.distinguished_name = name;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().map_err(|e| err("generating the node key", e))?;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| err("signing the node certificate", e))?;
        Ok(NodeIdentity {
            node: node.to_string(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            ca_pem: self.cert_pem.clone(),
        })
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| err(what, e))?;
    if certs.is_empty() {
        return Err(TlsError(format!("{what}: no certificate in PEM")));
    }
    Ok(certs)
}

fn roots(identity: &NodeIdentity) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(&identity.ca_pem, "cluster CA certificate")? {
        roots.add(cert).map_err(|e| err("cluster CA certificate", e))?;
    }
    Ok(roots)
}

fn key(identity: &NodeIdentity) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).map_err(|e| err("node key", e))
}

/// The QUIC server side: requires a client certificate from the cluster CA.
pub fn server_config(identity: &NodeIdentity) -> Result<quinn::ServerConfig, TlsError> {
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots(identity)?), provider())
        .build()
        .map_err(|e| err("client verifier", e))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| err("TLS versions", e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&identity.cert_pem, "node certificate")?, key(identity)?)
        .map_err(|e| err("node certificate", e))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| err("QUIC TLS", e))?;
    Ok(quinn::ServerConfig::with_crypto(Arc::new(crypto)))
}

/// The QUIC client side: trusts only the cluster CA, presents our cert.
pub fn client_config(identity: &NodeIdentity) -> Result<quinn::ClientConfig, TlsError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| err("TLS versions", e))?
        .with_root_certificates(roots(identity)?)
        .with_client_auth_cert(certs(&identity.cert_pem, "node certificate")?, key(identity)?)
        .map_err(|e| err("node certificate", e))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| err("QUIC TLS", e))?;
    Ok(quinn::ClientConfig::new(Arc::new(crypto)))
}

/// The node a verified peer certificate names, given the name the peer
/// claims: `Some(name)` only if the certificate is valid for it.
pub fn peer_is(connection: &quinn::Connection, claimed: &str) -> bool {
    let Some(identity) = connection.peer_identity() else {
        return false;
    };
    let Ok(chain) = identity.downcast::<Vec<CertificateDer<'static>>>() else {
        return false;
    };
    let Some(leaf) = chain.first() else { return false };
    let Ok(cert) = webpki::EndEntityCert::try_from(leaf) else {
        return false;
    };
    let Ok(name) = ServerName::try_from(claimed.to_string()) else {
        return false;
    };
    cert.verify_is_valid_for_subject_name(&name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_identities_build_configs_and_names_are_checked() {
        let ca = ClusterCa::generate("test").unwrap();
        let identity = ca.issue("node1").unwrap();
        assert!(identity.cert_pem.contains("BEGIN CERTIFICATE"));
        server_config(&identity).unwrap();
        client_config(&identity).unwrap();
        assert!(ca.issue("bad name").unwrap_err().0.contains("invalid node name"));
        let long = "n".repeat(64);
        assert_eq!(
            ca.issue(&long).unwrap_err().0,
            format!("invalid node name '{long}' (1 to 63 characters: letters, digits and '-', neither first nor last)")
        );
        assert!(ca.issue(&"n".repeat(63)).is_ok());
        let broken = NodeIdentity {
            key_pem: "garbage".into(),
            ..identity
        };
        assert!(server_config(&broken).is_err());
    }
}
