//! Where the executor's upstream credentials come from (invariant I1: they live here, in a
//! [`Secret`], and nowhere else).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use sod_core::{BoxError, Secret};

/// The upstream user and, if the server asks for one, the password.
pub struct UpstreamCredentials {
    /// The database role the gateway logs in as.
    pub user: String,
    /// Its password; `None` for trust authentication.
    pub password: Option<Arc<Secret<String>>>,
}

/// A boxed future, as returned by [`CredentialSource::credentials`].
pub type CredentialsFuture<'a> =
    Pin<Box<dyn Future<Output = Result<UpstreamCredentials, BoxError>> + Send + 'a>>;

/// Supplies upstream credentials, each time the gateway opens an upstream connection (so a
/// rotated password is picked up without a restart).
pub trait CredentialSource: Send + Sync + 'static {
    /// The credentials to use now.
    fn credentials(&self) -> CredentialsFuture<'_>;
}

/// Fixed credentials, held in memory.
///
/// ```
/// use sod_core::Secret;
/// use sod_postgres::credentials::StaticCredentials;
///
/// let creds = StaticCredentials::new("executor", Some(Secret::new("s3cret".to_owned())));
/// # let _ = creds;
/// ```
pub struct StaticCredentials {
    user: String,
    password: Option<Arc<Secret<String>>>,
}

impl StaticCredentials {
    /// `user` with an optional password.
    pub fn new(user: impl Into<String>, password: Option<Secret<String>>) -> Self {
        Self {
            user: user.into(),
            password: password.map(Arc::new),
        }
    }
}

impl CredentialSource for StaticCredentials {
    fn credentials(&self) -> CredentialsFuture<'_> {
        Box::pin(async move {
            Ok(UpstreamCredentials {
                user: self.user.clone(),
                password: self.password.clone(),
            })
        })
    }
}

/// Credentials read from environment variables at each connect.
pub struct EnvCredentials {
    user: EnvUser,
    password_var: String,
}

enum EnvUser {
    /// Read from this variable.
    Var(String),
    /// Fixed.
    Named(String),
}

impl EnvCredentials {
    /// Reads the user from `user_var` and the password from `password_var` (no password if
    /// it is unset).
    pub fn new(user_var: impl Into<String>, password_var: impl Into<String>) -> Self {
        Self {
            user: EnvUser::Var(user_var.into()),
            password_var: password_var.into(),
        }
    }

    /// A fixed `user` whose password is read from `password_var`, which must be set.
    pub fn password_of(user: impl Into<String>, password_var: impl Into<String>) -> Self {
        Self {
            user: EnvUser::Named(user.into()),
            password_var: password_var.into(),
        }
    }
}

impl CredentialSource for EnvCredentials {
    fn credentials(&self) -> CredentialsFuture<'_> {
        Box::pin(async move {
            let var = |name: &str| {
                std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))
            };
            let user = match &self.user {
                EnvUser::Var(name) => var(name)?,
                EnvUser::Named(user) => user.clone(),
            };
            let password = match &self.user {
                EnvUser::Var(_) => std::env::var(&self.password_var).ok(),
                EnvUser::Named(_) => Some(var(&self.password_var)?),
            };
            Ok(UpstreamCredentials {
                user,
                password: password.map(|p| Arc::new(Secret::new(p))),
            })
        })
    }
}

/// A fixed user with the password read from a file at each connect (trailing newline removed).
/// The file must not be readable by group or others.
pub struct FileCredentials {
    user: String,
    path: PathBuf,
}

impl FileCredentials {
    /// `user` with the password in `path`.
    pub fn new(user: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self {
            user: user.into(),
            path: path.into(),
        }
    }
}

impl CredentialSource for FileCredentials {
    fn credentials(&self) -> CredentialsFuture<'_> {
        Box::pin(async move {
            let path = self.path.clone();
            let text = tokio::task::spawn_blocking(move || Secret::read_private_file(&path))
                .await
                .map_err(|e| format!("cannot read {}: {e}", self.path.display()))??;
            let password = text.expose_secret().trim_end_matches(['\n', '\r']);
            Ok(UpstreamCredentials {
                user: self.user.clone(),
                password: Some(Arc::new(Secret::new(password.to_owned()))),
            })
        })
    }
}
