pub mod http;

use magnus::{function, prelude::*, Error, Ruby};

fn hello(s: String) -> String { format!("hi {s}") }

#[magnus::init]
fn init(ruby: &Ruby) -> Result<(), Error> {
    let m = ruby.define_module("Rustpuma")?;
    m.define_singleton_method("hello", function!(hello, 1))?;
    Ok(())
}
