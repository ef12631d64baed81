//! The choosing table: what, besides latency and cost, decides between the storage options
//! (size limit, rotation, cross-account access, the audit trail of a read, who can read the
//! value, what it needs), each cell with the page it comes from; and how fast a new value
//! reaches a warm function through each cache configuration.

use std::fmt::Write as _;

/// A statement and the page it comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cell {
    pub(crate) text: &'static str,
    pub(crate) source: &'static str,
}

const fn cell(text: &'static str, source: &'static str) -> Cell {
    Cell { text, source }
}

/// One storage option.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoreOption {
    pub(crate) scheme: &'static str,
    pub(crate) size: Cell,
    pub(crate) rotation: Cell,
    pub(crate) cross_account: Cell,
    pub(crate) audit: Cell,
    pub(crate) readers: Cell,
    pub(crate) needs: Cell,
}

const LAMBDA_LIMITS: &str =
    "https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html";
const LAMBDA_CONFIG_API: &str =
    "https://docs.aws.amazon.com/lambda/latest/api/API_GetFunctionConfiguration.html";
const KMS_ENCRYPT: &str = "https://docs.aws.amazon.com/kms/latest/APIReference/API_Encrypt.html";
const KMS_CROSS_ACCOUNT: &str = "https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-modifying-external-accounts.html";
const KMS_CLOUDTRAIL: &str =
    "https://docs.aws.amazon.com/kms/latest/developerguide/logging-using-cloudtrail.html";
const EFS_IAM: &str = "https://docs.aws.amazon.com/efs/latest/ug/iam-access-control-nfs-efs.html";
const LAMBDA_EFS: &str =
    "https://docs.aws.amazon.com/lambda/latest/dg/configuration-filesystem.html";
const S3_OBJECTS: &str = "https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingObjects.html";
const S3_VERSIONING: &str = "https://docs.aws.amazon.com/AmazonS3/latest/userguide/Versioning.html";
const S3_CROSS_ACCOUNT: &str = "https://repost.aws/knowledge-center/cross-account-access-s3";
const CLOUDTRAIL_DATA: &str = "https://docs.aws.amazon.com/awscloudtrail/latest/userguide/logging-data-events-with-cloudtrail.html";
const S3_GATEWAY: &str =
    "https://docs.aws.amazon.com/vpc/latest/privatelink/gateway-endpoints.html";
const SM_LIMITS: &str =
    "https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_SecretValueEntry.html";
const SM_ROTATION: &str =
    "https://docs.aws.amazon.com/secretsmanager/latest/userguide/rotate-secrets_lambda.html";
const SM_CROSS_ACCOUNT: &str = "https://docs.aws.amazon.com/secretsmanager/latest/userguide/auth-and-access_examples_cross.html";
const SM_RETRIEVE: &str =
    "https://docs.aws.amazon.com/secretsmanager/latest/userguide/retrieving-secrets.html";
const SM_ENDPOINT: &str =
    "https://docs.aws.amazon.com/secretsmanager/latest/userguide/vpc-endpoint-overview.html";
const SSM_TIERS: &str = "https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html";
const SSM_NO_ROTATION: &str =
    "https://docs.aws.amazon.com/secretsmanager/latest/userguide/integrating_parameterstore.html";
const SSM_SHARED: &str = "https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-shared-parameters.html";
const SSM_CLOUDTRAIL: &str =
    "https://docs.aws.amazon.com/systems-manager/latest/userguide/monitoring-cloudtrail-logs.html";
const SSM_ENDPOINT: &str =
    "https://docs.aws.amazon.com/systems-manager/latest/userguide/setup-create-vpc.html";

/// The options, in the order the report lists backends.
pub(crate) const OPTIONS: [StoreOption; 7] = [
    StoreOption {
        scheme: "env://",
        size: cell(
            "4 KB for all the function's variables together",
            LAMBDA_LIMITS,
        ),
        rotation: cell(
            "none: a configuration update, which new environments pick up",
            LAMBDA_CONFIG_API,
        ),
        cross_account: cell("no: part of the function", LAMBDA_CONFIG_API),
        audit: cell(
            "none for the read; the configuration read (GetFunctionConfiguration) is an API call like any other",
            LAMBDA_CONFIG_API,
        ),
        readers: cell(
            "anyone allowed lambda:GetFunctionConfiguration on the function: the answer holds the variables in plain text",
            LAMBDA_CONFIG_API,
        ),
        needs: cell("nothing", LAMBDA_LIMITS),
    },
    StoreOption {
        scheme: "env+kms://",
        size: cell(
            "4 KB for all variables, and the ciphertext is larger than the value; KMS encrypts at most 4,096 bytes directly",
            KMS_ENCRYPT,
        ),
        rotation: cell(
            "none: seal again and update the configuration",
            LAMBDA_CONFIG_API,
        ),
        cross_account: cell(
            "the key may be another account's (its key policy allows the function's role)",
            KMS_CROSS_ACCOUNT,
        ),
        audit: cell(
            "each read's KMS Decrypt is a CloudTrail management event",
            KMS_CLOUDTRAIL,
        ),
        readers: cell(
            "lambda:GetFunctionConfiguration gives the ciphertext; the value also needs kms:Decrypt on the key",
            KMS_ENCRYPT,
        ),
        needs: cell("a customer-managed KMS key", KMS_ENCRYPT),
    },
    StoreOption {
        scheme: "file+kms://",
        size: cell(
            "none of the store's (a file on EFS; the envelope is framed)",
            LAMBDA_EFS,
        ),
        rotation: cell("none: write a new file", LAMBDA_EFS),
        cross_account: cell(
            "the file system is reached from a VPC (the same or a peered one); the key may be another account's",
            LAMBDA_EFS,
        ),
        audit: cell(
            "the read's KMS Decrypt is a management event; file reads are not logged (a mount with IAM authorization is)",
            EFS_IAM,
        ),
        readers: cell(
            "whoever mounts the file system and may read the file, with kms:Decrypt on the key",
            EFS_IAM,
        ),
        needs: cell(
            "the function in a VPC with mount targets, and an interface endpoint for KMS (no internet path)",
            LAMBDA_EFS,
        ),
    },
    StoreOption {
        scheme: "s3+kms://",
        size: cell("none that matters (an S3 object, up to 50 TB)", S3_OBJECTS),
        rotation: cell(
            "none built in: put a new object (a versioned bucket keeps the old ones)",
            S3_VERSIONING,
        ),
        cross_account: cell("a bucket policy and the key's policy", S3_CROSS_ACCOUNT),
        audit: cell(
            "GetObject is a data event (not logged unless a trail asks for it, billed per event); the Decrypt a management event",
            CLOUDTRAIL_DATA,
        ),
        readers: cell(
            "s3:GetObject on the object and kms:Decrypt on the key",
            S3_OBJECTS,
        ),
        needs: cell(
            "a customer-managed KMS key; in a VPC, S3's gateway endpoint (no hourly fee)",
            S3_GATEWAY,
        ),
    },
    StoreOption {
        scheme: "s3+sse-kms://",
        size: cell("none that matters (an S3 object, up to 50 TB)", S3_OBJECTS),
        rotation: cell(
            "none built in: put a new object (a versioned bucket keeps the old ones)",
            S3_VERSIONING,
        ),
        cross_account: cell("a bucket policy and the key's policy", S3_CROSS_ACCOUNT),
        audit: cell(
            "GetObject is a data event (not logged unless a trail asks for it); S3's Decrypt on your behalf a management event",
            CLOUDTRAIL_DATA,
        ),
        readers: cell(
            "s3:GetObject on the object and kms:Decrypt on the key (S3 asks KMS as the caller)",
            S3_OBJECTS,
        ),
        needs: cell(
            "a KMS key (customer-managed, or aws/s3 within the account); in a VPC, S3's gateway endpoint",
            S3_GATEWAY,
        ),
    },
    StoreOption {
        scheme: "secretsmanager://",
        size: cell("65,536 bytes", SM_LIMITS),
        rotation: cell(
            "managed rotation, or a rotation Lambda function of your own on a schedule",
            SM_ROTATION,
        ),
        cross_account: cell(
            "a resource policy on the secret, and a customer-managed key (aws/secretsmanager can't be used across accounts)",
            SM_CROSS_ACCOUNT,
        ),
        audit: cell(
            "every GetSecretValue leaves a CloudTrail entry",
            SM_RETRIEVE,
        ),
        readers: cell(
            "secretsmanager:GetSecretValue on the secret (and kms:Decrypt on a customer-managed key)",
            SM_CROSS_ACCOUNT,
        ),
        needs: cell(
            "nothing outside a VPC; inside one, an interface endpoint (per hour per AZ)",
            SM_ENDPOINT,
        ),
    },
    StoreOption {
        scheme: "ssm://",
        size: cell("4 KB standard, 8 KB advanced (paid) parameters", SSM_TIERS),
        rotation: cell(
            "none built in (AWS points to Secrets Manager for rotation)",
            SSM_NO_ROTATION,
        ),
        cross_account: cell(
            "shared through AWS RAM (advanced parameters; not read here: the AWS CDK's change aws/aws-cdk#30646 describes it)",
            SSM_SHARED,
        ),
        audit: cell(
            "GetParameter calls are logged by CloudTrail, and the SecureString's Decrypt",
            SSM_CLOUDTRAIL,
        ),
        readers: cell(
            "ssm:GetParameter on the parameter and kms:Decrypt on its key",
            SSM_TIERS,
        ),
        needs: cell(
            "nothing outside a VPC; inside one, an interface endpoint (per hour per AZ)",
            SSM_ENDPOINT,
        ),
    },
];

/// How fast a new value reaches a warm function, per cache configuration.
pub(crate) const FRESHNESS: [(&str, Cell); 6] = [
    (
        "bare (no cache)",
        cell(
            "the next read: every read asks the store",
            "https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_GetSecretValue.html",
        ),
    ),
    (
        "`+memory` (`memory_ttl`)",
        cell(
            "within the TTL; with `memory_version_check` (Secrets Manager) at the first expiry after the change, one DescribeSecret per expiry otherwise",
            "https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_DescribeSecret.html",
        ),
    ),
    (
        "`+tmp` (`tmp_ttl`)",
        cell(
            "within the TTL; a Lambda environment's /tmp stays across its invocations",
            "https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html",
        ),
    ),
    (
        "`env://`, `env+kms://`",
        cell(
            "only in new environments, after a configuration update",
            LAMBDA_CONFIG_API,
        ),
    ),
    (
        "AWS's extension (and ours in its place)",
        cell(
            "within its TTL, 300 s by default and at most",
            "https://docs.aws.amazon.com/lambda/latest/dg/with-secrets-manager.html",
        ),
    ),
    (
        "Powertools `get_secret`",
        cell(
            "within `max_age`, 300 s by default (Powertools 3; 5 s in 2.x)",
            "https://docs.powertools.aws.dev/lambda/python/latest/utilities/parameters/",
        ),
    ),
];

/// The report's choosing section.
pub(crate) fn markdown() -> String {
    let mut sources: Vec<&'static str> = Vec::new();
    let mut cite = |cell: &Cell| -> String {
        let n = match sources.iter().position(|s| *s == cell.source) {
            Some(i) => i + 1,
            None => {
                sources.push(cell.source);
                sources.len()
            }
        };
        format!("{} [{n}]", cell.text)
    };
    let mut out = String::new();
    let _ = writeln!(out, "\n## Choosing: what else decides\n");
    let _ = writeln!(
        out,
        "Latency and cost are above; these decide as much. Each statement carries the number of \
         the page it comes from (listed under the tables).\n"
    );
    let _ = writeln!(
        out,
        "| Option | Size limit | Rotation | Cross-account | Audit trail of a read | Who can read the value | Needs |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for option in &OPTIONS {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} | {} |",
            option.scheme,
            cite(&option.size),
            cite(&option.rotation),
            cite(&option.cross_account),
            cite(&option.audit),
            cite(&option.readers),
            cite(&option.needs),
        );
    }
    let _ = writeln!(
        out,
        "\nHow fast a new value (a rotation) reaches a warm function:\n"
    );
    let _ = writeln!(out, "| Through | A new value is read |");
    let _ = writeln!(out, "|---|---|");
    for (through, cell) in &FRESHNESS {
        let _ = writeln!(out, "| {through} | {} |", cite(cell));
    }
    let _ = writeln!(out, "\nSources:\n");
    for (i, source) in sources.iter().enumerate() {
        let _ = writeln!(out, "{}. {source}", i + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cell_names_its_source_and_the_list_numbers_them_all() {
        for option in &OPTIONS {
            for cell in [
                option.size,
                option.rotation,
                option.cross_account,
                option.audit,
                option.readers,
                option.needs,
            ] {
                assert!(cell.source.starts_with("https://"), "{}", option.scheme);
                assert!(!cell.text.is_empty() && !cell.text.contains('|'));
            }
        }
        let text = markdown();
        let listed = text
            .lines()
            .skip_while(|l| *l != "Sources:")
            .filter(|l| l.contains(". https://"))
            .count();
        // Every statement cites one: 6 per option, 1 per cache configuration.
        let cited = text
            .split('[')
            .skip(1)
            .filter(|rest| {
                rest.split_once(']')
                    .is_some_and(|(n, _)| n.parse::<usize>().is_ok())
            })
            .count();
        assert!(listed >= 15, "{text}");
        assert_eq!(cited, OPTIONS.len() * 6 + FRESHNESS.len(), "{text}");
        // The number after each statement is the line of its source.
        let env_readers = text
            .lines()
            .find(|l| l.starts_with("| `env://`"))
            .unwrap()
            .split(" | ")
            .nth(5)
            .unwrap()
            .to_owned();
        let n: usize = env_readers
            .rsplit_once('[')
            .unwrap()
            .1
            .trim_end_matches(']')
            .parse()
            .unwrap();
        assert!(
            text.contains(&format!("{n}. {LAMBDA_CONFIG_API}")),
            "{env_readers}: {text}"
        );
    }
}
