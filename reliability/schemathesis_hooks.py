"""schemathesis hooks for reliability/run (loaded through SCHEMATHESIS_HOOKS).

The admin import (`POST /admin/v1/users/import`) takes `application/x-ndjson`, which
schemathesis cannot serialise by itself: its documented body is a string (the file's text), sent
as text is.
"""

import schemathesis

schemathesis.serializer.alias("application/x-ndjson", "text/plain")
