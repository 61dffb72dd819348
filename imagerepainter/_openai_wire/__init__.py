"""The OpenAI wire protocol served locally (private): used by the sandbox server and by the test server.

:class:`~imagerepainter._openai_wire.server.OpenAICompatibleServer` answers chat completions,
image generations and model listings on 127.0.0.1 from a *responder* function;
:class:`~imagerepainter._openai_wire.schema_responder.SchemaResponder` turns a function that
answers the loop's schemas into one. It lives outside :mod:`imagerepainter.testing` so the
product command ``serve-sandbox`` does not depend on the testing package; tests and users
import it from :mod:`imagerepainter.testing.openai_server`.
"""
