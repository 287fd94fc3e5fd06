//! Tests of [`super::Store`] and [`super::FolderName`] on temporary
//! Maildirs.

use super::*;

#[test]
fn placeholder_names() {
    assert!(FolderName::new("a").is_ok());
}
