//! The dashboard's pages (issue 14): being built.
