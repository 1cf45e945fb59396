"""A C2SP tlog-witness: a service beside the gateway that cosigns the logs it follows."""
