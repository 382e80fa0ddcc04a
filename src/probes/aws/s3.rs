//! `aws.s3.*`: S3.

use super::Op;

/// The S3 calls this module makes.
pub(crate) const OPERATIONS: &[Op] = &[];
