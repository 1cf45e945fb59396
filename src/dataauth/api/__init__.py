"""HTTP routers: thin; they parse, call the gateway, and render."""
