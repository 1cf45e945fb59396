# Verification (核验): answers true/false or a band per subject, never a stored value.
package dataauth

import rego.v1

kinds contains "verify"

verify_limits := data.dataauth.limits.verify

kind_obligations["verify"] := {"batch_limit": verify_limits.batch_limit}

deny contains reason("batch_too_large", msg) if {
	input.operation.kind == "verify"
	input.subjects.count > verify_limits.batch_limit
	msg := sprintf(
		"a batch of %d subjects is over the limit of %d",
		[input.subjects.count, verify_limits.batch_limit],
	)
}

# a verification looks subjects up by key and compares; it reads no column otherwise
deny contains reason("column_use_not_allowed", msg) if {
	input.operation.kind == "verify"
	some column in input.columns
	not column.use in {"key", "compare"}
	msg := sprintf("a verification may not use column %s as %s", [column.name, column.use])
}
