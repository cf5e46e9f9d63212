"""Webhooks: Standard Webhooks-signed POSTs of a generation's events, from the durable
outbox in the job store.

- `urls.check_webhook_url`: the submit-time check of a destination (400 naming the field);
- `signing`: `whsec_` secrets and the `webhook-*` headers (the `standardwebhooks` package);
- `sender`: one POST under the media fetcher's SSRF policy (resolved, checked, pinned);
- `dispatcher`: the thread in API processes and workers that claims, sends and retries;
- `endpoints`: per-key secrets and default endpoints, shared by the API and the CLI.

The dispatcher is imported from its module (it needs the wire dialect, which imports
this package's URL check)."""

from __future__ import annotations

from kinema.webhooks.urls import check_webhook_url

__all__ = ["check_webhook_url"]
