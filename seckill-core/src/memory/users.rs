//! The users of [`MemoryStore`]: `impl UserRepo`.

use super::store::MemoryStore;
use crate::domain::{User, UserId};
use crate::repo::UserRepo;
use crate::{Entity, Error, Result};
use async_trait::async_trait;

#[async_trait]
impl UserRepo for MemoryStore {
    async fn insert_user(&self, user: &User) -> Result<()> {
        let mut t = self.t.lock();
        if t.usernames.contains_key(&user.username) {
            return Err(Error::conflict(
                Entity::Username,
                &user.username,
                "the username is taken",
            ));
        }
        if t.users.contains_key(&user.id) {
            return Err(Error::conflict(Entity::User, user.id, "the user exists"));
        }
        t.usernames.insert(user.username.clone(), user.id);
        t.users.insert(user.id, user.clone());
        Ok(())
    }

    async fn user(&self, id: UserId) -> Result<Option<User>> {
        Ok(self.t.lock().users.get(&id).cloned())
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        let t = self.t.lock();
        Ok(t.usernames
            .get(username)
            .and_then(|id| t.users.get(id))
            .cloned())
    }

    async fn update_user(&self, user: &User) -> Result<()> {
        let mut t = self.t.lock();
        let Some(old) = t.users.get(&user.id).cloned() else {
            return Err(Error::not_found(Entity::User, user.id));
        };
        if old.username != user.username {
            if t.usernames.contains_key(&user.username) {
                return Err(Error::conflict(
                    Entity::Username,
                    &user.username,
                    "the username is taken",
                ));
            }
            t.usernames.remove(&old.username);
            t.usernames.insert(user.username.clone(), user.id);
        }
        t.users.insert(user.id, user.clone());
        Ok(())
    }
}
