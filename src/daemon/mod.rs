//! The daemon's assembly: what joins the actor tree to the client API
//! (the API reaches the store through [`LockStore`], the LockActor behind
//! `api::server::StoreAccess`). The binary `hactor` is a short `main`
//! over this and the modules below it.
//!
//! May import every other folder of the crate; nothing imports it but
//! the binaries.

mod store_access;

pub use store_access::LockStore;
