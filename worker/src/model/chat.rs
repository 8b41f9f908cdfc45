//! The model's chat template (Hugging Face Jinja), rendered with minijinja.

use minijinja::{Environment, ErrorKind, context};
use morpheus_sdk::openai::ChatMessage;

use super::ModelMeta;
use crate::Result;

/// ChatML, for models that ship no template.
const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] \
                      + '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// A compiled chat template.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
}

impl ChatTemplate {
    /// Compiles the template of `meta` (ChatML when it has none).
    pub fn new(meta: &ModelMeta) -> Result<Self> {
        let mut env = Environment::new();
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
            },
        );
        let source = meta
            .chat_template
            .clone()
            .unwrap_or_else(|| CHATML.to_string());
        env.add_template_owned("chat", source)?;
        Ok(Self {
            env,
            bos: meta.bos_token.clone().unwrap_or_default(),
            eos: meta.eos_token.clone().unwrap_or_default(),
        })
    }

    /// The prompt text for `messages`, ending where the assistant's answer starts.
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String> {
        let tmpl = self.env.get_template("chat")?;
        Ok(tmpl.render(context! {
            messages => messages,
            add_generation_prompt => true,
            bos_token => &self.bos,
            eos_token => &self.eos,
        })?)
    }
}
