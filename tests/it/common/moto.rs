//! A moto server (a local AWS) for tests: started on a free loopback port from `.venv`
//! (installed by `scripts/test`; `TRELLIS_MOTO_SERVER` overrides the path), reset between
//! scenarios, killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A moto server on a free loopback port, killed on drop.
pub struct Moto {
    child: Child,
    pub url: String,
}

#[allow(dead_code)]
impl Moto {
    pub async fn start() -> Moto {
        let bin = std::env::var_os("TRELLIS_MOTO_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join(".venv/bin/moto_server"));
        assert!(
            bin.exists(),
            "moto server not found at {}: run scripts/test, which installs moto[server] into .venv",
            bin.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            // Thousands of default AMIs (and their snapshots) only slow every listing down;
            // without them moto launches instances from any image id.
            .env("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !moto.try_reset().await {
            assert!(Instant::now() < deadline, "moto did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        moto
    }

    /// `POST /moto-api/reset`: every account back to empty.
    async fn try_reset(&self) -> bool {
        reqwest::Client::new()
            .post(format!("{}/moto-api/reset", self.url))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    pub async fn reset(&self) {
        assert!(self.try_reset().await, "moto reset failed");
    }

    pub fn sdk(&self, region: &str) -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .endpoint_url(&self.url)
            .credentials_provider(aws_sdk_iam::config::SharedCredentialsProvider::new(
                aws_sdk_iam::config::Credentials::new("testing", "testing", None, None, "test"),
            ))
            .build()
    }

    pub fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.sdk("us-east-1"))
    }

    pub fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.sdk(region))
    }

    pub fn rds(&self, region: &str) -> aws_sdk_rds::Client {
        aws_sdk_rds::Client::new(&self.sdk(region))
    }

    /// Path-style: moto answers on one host.
    pub fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.sdk(region))
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    pub fn cloudtrail(&self, region: &str) -> aws_sdk_cloudtrail::Client {
        aws_sdk_cloudtrail::Client::new(&self.sdk(region))
    }

    pub fn guardduty(&self, region: &str) -> aws_sdk_guardduty::Client {
        aws_sdk_guardduty::Client::new(&self.sdk(region))
    }

    /// S3 Control `PutPublicAccessBlock` for moto's default account, by hand: the SDK would
    /// put the account id in front of moto's host name.
    pub async fn put_account_public_access_block(&self, all: bool) {
        let body = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><PublicAccessBlockConfiguration xmlns="http://awss3control.amazonaws.com/doc/2018-08-20/"><BlockPublicAcls>{all}</BlockPublicAcls><IgnorePublicAcls>{all}</IgnorePublicAcls><BlockPublicPolicy>{all}</BlockPublicPolicy><RestrictPublicBuckets>{all}</RestrictPublicBuckets></PublicAccessBlockConfiguration>"#
        );
        let answer = reqwest::Client::new()
            .put(format!("{}/v20180820/configuration/publicAccessBlock", self.url))
            .header("x-amz-account-id", "123456789012")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0",
            )
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "{:?}", answer.text().await);
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
