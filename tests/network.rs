//! The harness's AWS-shaped network (`secret_loader_harness::AwsNetwork`) in front of the
//! emulator, through the real SDK client: the certificate is really verified (a client that
//! trusts another authority is refused, and counted as a failed handshake), a kept-alive
//! connection serves later reads (one connection, one handshake), and the round trip costs
//! what the model says (a cold read at 5 ms takes at least three round trips longer than at
//! zero: TCP, TLS 1.3, the request).

use std::time::{Duration, Instant};

use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use secret_loader::testing as common;
use secret_loader_harness::AwsNetwork;

/// A Secrets Manager client for `network`'s endpoint that trusts only the authority in
/// `ca_pem`: a new HTTP client, so a new connection pool.
async fn client(network: &AwsNetwork, ca_pem: &[u8]) -> aws_sdk_secretsmanager::Client {
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(ca_pem.to_vec());
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(
            TlsContext::builder()
                .with_trust_store(trust)
                .build()
                .unwrap(),
        )
        .build_https();
    let sdk = common::sdk_config().await;
    aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&sdk)
            .endpoint_url(network.endpoint_url("secretsmanager").unwrap())
            .http_client(http)
            .build(),
    )
}

/// One `GetSecretValue` of `id`, which must succeed.
async fn read(
    client: &aws_sdk_secretsmanager::Client,
    id: &secret_loader::SecretId,
) -> aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput {
    client
        .get_secret_value()
        .secret_id(id.as_str())
        .send()
        .await
        .unwrap()
}

fn ca(network: &AwsNetwork) -> Vec<u8> {
    std::fs::read(network.ca_file()).unwrap()
}

async fn seeded() -> secret_loader::SecretId {
    common::secretsmanager_secret("network", "over-tls").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_trusts_another_authority_is_refused() {
    let id = seeded().await;
    let network = AwsNetwork::start(&common::emulator_endpoint(), Duration::ZERO).unwrap();
    let other = AwsNetwork::start(&common::emulator_endpoint(), Duration::ZERO).unwrap();
    let stranger = client(&network, &ca(&other)).await;
    let refused = stranger
        .get_secret_value()
        .secret_id(id.as_str())
        .send()
        .await;
    let err = refused.expect_err("a certificate from an untrusted authority was accepted");
    let text = format!(
        "{:?}",
        aws_smithy_types::error::display::DisplayErrorContext(&err)
    );
    assert!(
        text.to_lowercase().contains("certificate"),
        "not a certificate error: {text}"
    );
    let stats = network.stats()["secretsmanager"];
    assert_eq!(stats.full_handshakes, 0, "{stats:?}");
    assert!(stats.failed_handshakes >= 1, "{stats:?}");
    assert_eq!(stats.requests, 0, "{stats:?}");
    // The same request, trusting the run's authority, goes through.
    let trusting = client(&network, &ca(&network)).await;
    let answer = read(&trusting, &id).await;
    assert_eq!(answer.secret_string(), Some("over-tls"));
    assert_eq!(network.stats()["secretsmanager"].full_handshakes, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_kept_alive_connection_serves_every_read() {
    let id = seeded().await;
    let network = AwsNetwork::start(&common::emulator_endpoint(), Duration::ZERO).unwrap();
    let client = client(&network, &ca(&network)).await;
    for _ in 0..3 {
        read(&client, &id).await;
        settle().await;
    }
    let stats = network.stats();
    let sm = stats["secretsmanager"];
    assert_eq!(
        (
            sm.connections,
            sm.full_handshakes,
            sm.resumed_handshakes,
            sm.requests
        ),
        (1, 1, 0, 3),
        "{sm:?}"
    );
    // Nothing went to the other services' endpoints.
    for (service, other) in &stats {
        if service != "secretsmanager" {
            assert_eq!(other.connections, 0, "{service}: {other:?}");
        }
    }
}

/// Lets the client put the connection it just used back in its pool: hyper does that in a
/// background task, and a request that comes before it has run opens a new connection (a
/// busy machine showed it), which is the client's doing, not the network's.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// The physics: a first read on a new connection waits for TCP, TLS 1.3 and the request, each
/// a round trip; a read on the kept-alive connection, one. After one round that pays the
/// process's one-time TLS set-up, five cold reads at each round trip (a new network and client
/// each), the two kinds interleaved so that a load that comes and goes falls on both, and the
/// fastest of each compared: noise can only shrink the difference, never make it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_read_costs_three_round_trips_and_a_warm_one_one() {
    let id = seeded().await;
    let rtt = Duration::from_millis(5);
    let mut fastest = [Duration::MAX; 2];
    let warm_up = [(None, Duration::ZERO)];
    let trials = (0..5).flat_map(|_| [(Some(0), Duration::ZERO), (Some(1), rtt)]);
    for (slot, delay) in warm_up.into_iter().chain(trials) {
        let network = AwsNetwork::start(&common::emulator_endpoint(), delay).unwrap();
        assert_eq!(network.rtt(), delay);
        let client = client(&network, &ca(&network)).await;
        let timed = || async {
            let started = Instant::now();
            read(&client, &id).await;
            started.elapsed()
        };
        let cold = timed().await;
        settle().await;
        let warm = timed().await;
        assert!(warm >= delay, "a warm read took {warm:?} at {delay:?}");
        assert_eq!(network.stats()["secretsmanager"].connections, 1);
        if let Some(slot) = slot {
            fastest[slot] = fastest[slot].min(cold);
        }
    }
    eprintln!(
        "fastest cold read: {:?} at rtt 0, {:?} at rtt {rtt:?}",
        fastest[0], fastest[1]
    );
    assert!(
        fastest[1] >= fastest[0] + rtt * 3,
        "fastest cold read at 0: {:?}, at {rtt:?}: {:?}",
        fastest[0],
        fastest[1]
    );
}
