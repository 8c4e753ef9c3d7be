//! The users of [`PgStore`]: `impl UserRepo` with the user row mapper and the role helper.

use super::map_err;
use super::store::{bad, PgStore};
use async_trait::async_trait;
use seckill_core::domain::{Role, User, UserId};
use seckill_core::repo::UserRepo;
use seckill_core::{Entity, Error, Result};
use tokio_postgres::Row;

fn role_str(r: Role) -> &'static str {
    match r {
        Role::User => "user",
        Role::Admin => "admin",
    }
}

fn user(r: &Row) -> Result<User> {
    let role: String = r.get("role");
    Ok(User {
        id: UserId(r.get("id")),
        username: r.get("username"),
        phone: r.get("phone"),
        password_hash: r.get("password_hash"),
        role: match role.as_str() {
            "user" => Role::User,
            "admin" => Role::Admin,
            other => return Err(bad("role", other)),
        },
        token_version: r.get::<_, i32>("token_version") as u32,
        created_at: r.get("created_at"),
    })
}

#[async_trait]
impl UserRepo for PgStore {
    async fn insert_user(&self, u: &User) -> Result<()> {
        self.exec(
                "INSERT INTO users (id, username, phone, password_hash, role, token_version, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&u.id.0, &u.username, &u.phone, &u.password_hash, &role_str(u.role),
                  &(u.token_version as i32), &u.created_at],
            )
            .await
            .map_err(|e| taken(e, u))?;
        Ok(())
    }

    async fn user(&self, id: UserId) -> Result<Option<User>> {
        self.one("SELECT * FROM users WHERE id = $1", &[&id.0], user)
            .await
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        self.one(
            "SELECT * FROM users WHERE username = $1",
            &[&username],
            user,
        )
        .await
    }

    async fn update_user(&self, u: &User) -> Result<()> {
        let n = self
            .client()
            .await?
            .execute(
                "UPDATE users SET username = $2, phone = $3, password_hash = $4, role = $5,
                     token_version = $6 WHERE id = $1",
                &[
                    &u.id.0,
                    &u.username,
                    &u.phone,
                    &u.password_hash,
                    &role_str(u.role),
                    &(u.token_version as i32),
                ],
            )
            .await
            .map_err(map_err)?;
        if n == 0 {
            return Err(Error::not_found(Entity::User, u.id));
        }
        Ok(())
    }
}

/// A unique violation on the username, said as the memory backend says it (the same answer on
/// every backend); any other error as it is.
fn taken(e: Error, u: &User) -> Error {
    match e {
        Error::Conflict {
            entity: Entity::Username,
            ..
        } => Error::conflict(Entity::Username, &u.username, "the username is taken"),
        other => other,
    }
}
