//! `fermyon:spin/variables@2.0.0`: a component reads its own `[component.ID.variables]`,
//! expanded at startup (see [`crate::variables`]).

use anyhow::Result;

use super::bindings::fermyon::spin::variables::{Error, Host};
use crate::state::GuestState;

impl Host for GuestState {
    fn get(&mut self, name: String) -> Result<Result<String, Error>> {
        if !crate::variables::is_valid_name(&name) {
            return Ok(Err(Error::InvalidName(format!(
                "`{name}`: variable names are lowercase letters, digits and underscores"
            ))));
        }
        Ok(match self.config.variables.get(&name) {
            Some(value) => Ok(value.clone()),
            None => Err(Error::Undefined(format!(
                "component `{}` has no variable `{name}`",
                self.config.id
            ))),
        })
    }
}
