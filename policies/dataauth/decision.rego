# The one entry point: data.dataauth.decision = {"allow", "reasons", "obligations"}.
#
# Deny is the default. A request is allowed only when no rule denies it and a module
# in kinds/ covers its operation kind. Rules common to every kind (licence, purpose,
# product, column uses) live here; each kind's module adds, in this same package, its
# name to `kinds`, its own `deny` rules guarded by its kind, and its obligations under
# `kind_obligations[<kind>]`. See policies/README.md for the input contract.
#
# The kinds' rules are named here by full path (`data.dataauth.kinds`): an OPA server
# compiles a pushed module with those it already has and refuses one whose bare name
# of a rule no module there defines (the gateway pushes it again once one does), so
# two modules may not use each other's rules by bare name; the kinds' modules use this
# one's (`reason`, `column_dataset`).
package dataauth

import rego.v1

default decision := {
	"allow": false,
	"reasons": [{"code": "no_rule", "message": "no policy rule allowed this request"}],
	"obligations": {},
}

decision := {"allow": true, "reasons": [], "obligations": obligations} if {
	count(deny) == 0
	input.operation.kind in data.dataauth.kinds
}

# the comprehension is bound in the body: regorus 0.9 cannot schedule one written in
# the head of a rule that has a body ("statements not scheduled in query")
decision := {"allow": false, "reasons": reasons, "obligations": {}} if {
	count(deny) > 0
	reasons := [r | some r in deny]
}

reason(code, message) := {"code": code, "message": message}

obligations := object.union(
	object.union(data.dataauth.limits.defaults, {"usage": usage, "subject_budget": subject_budget}),
	object.get(data.dataauth.kind_obligations, input.operation.kind, {}),
)

# -- per-subject disclosure budgets: how many bits any answer may tell about one person -
# within a sliding window, per operator and across all operators; the gateway charges
# what each answer can reveal (a boolean 1 bit, a band log2 of its bands, a score log2
# of its values) and refuses past the budget (429 subject_budget_exhausted)

subject_budget := object.union(
	data.dataauth.limits.subject_budget.defaults,
	object.get(data.dataauth.limits.subject_budget.operators, input.operator.id, {}),
)

licence := input.operator.licence if input.operator.licence != null

deny contains reason("kind_not_covered", msg) if {
	not input.operation.kind in data.dataauth.kinds
	msg := sprintf("no policy covers operations of kind %s", [input.operation.kind])
}

# -- the operator's licence (授权运营许可) -----------------------------------------

deny contains reason("no_licence", sprintf("operator %s holds no licence", [input.operator.id])) if {
	not licence
}

deny contains reason("licence_revoked", msg) if {
	licence.revoked
	msg := sprintf("the licence of %s has been revoked", [input.operator.id])
}

deny contains reason("licence_not_yet_valid", msg) if {
	input.time < licence.valid_from
	msg := sprintf("the licence of %s is valid from %s", [input.operator.id, licence.valid_from])
}

deny contains reason("licence_expired", msg) if {
	input.time >= licence.valid_to
	msg := sprintf("the licence of %s expired at %s", [input.operator.id, licence.valid_to])
}

deny contains reason("purpose_not_licensed", msg) if {
	licence
	not input.purpose in licence.purposes
	msg := sprintf("the licence of %s does not cover the purpose %s", [input.operator.id, input.purpose])
}

deny contains reason("product_not_licensed", msg) if {
	licence
	product := input.operation.product
	not product in licence.products
	msg := sprintf("the licence of %s does not cover the product %s", [input.operator.id, product])
}

# -- column uses (分类分级): every column is used only as its classification allows ---

# a column names its own dataset where a request reads two (a query's declared join)
column_dataset(column) := object.get(column, "dataset", input.dataset.id)

deny contains reason("column_use_not_allowed", msg) if {
	some column in input.columns
	not column.use in column.uses
	msg := sprintf(
		"column %s.%s (%s) does not allow use as %s",
		[column_dataset(column), column.name, column.level, column.use],
	)
}

# L4 (core / sensitive personal) columns: beyond looking subjects up, only with a grant
# naming the column in the operator's licence
deny contains reason("column_level_not_granted", msg) if {
	some column in input.columns
	column.level == "L4"
	column.use != "key"
	name := sprintf("%s.%s", [column_dataset(column), column.name])
	not name in object.get(licence, "grants", [])
	msg := sprintf("column %s is L4: the licence of %s grants no %s use of it", [name, input.operator.id, column.use])
}

# -- usage control: limits from this bundle's data and from the licence, the lower wins -
# rate_per_minute (requests), daily_quota (subjects a day), subject_per_day (how often
# one subject may be asked about, against probing); the gateway counts and refuses.

usage_data := object.get(data.dataauth.limits, "usage", {})

usage_policy := object.union(
	object.get(usage_data, "defaults", {}),
	object.get(object.get(usage_data, "operators", {}), input.operator.id, {}),
)

default licence_limits := {}

licence_limits := object.get(licence, "limits", {})

usage[name] := min([limit, licence_limits[name]]) if {
	some name, limit in usage_policy
	licence_limits[name]
}

usage[name] := limit if {
	some name, limit in usage_policy
	not licence_limits[name]
}

usage[name] := limit if {
	some name, limit in licence_limits
	not usage_policy[name]
}

# -- hours: when an operator may ask, in the department's local time (HH:MM) ----------

deny contains reason("outside_hours", msg) if {
	hours := object.get(object.get(data.dataauth.limits, "hours", {}), input.operator.id, null)
	hours != null
	not within(input.local_time, hours)
	msg := sprintf(
		"%s may ask between %s and %s local time; it is %s there now",
		[input.operator.id, hours.from, hours.to, input.local_time],
	)
}

within(time, hours) if {
	time >= hours.from
	time < hours.to
}

# -- consent (授权): where a product needs it, every subject's own, for this request ----

deny contains reason("consent_missing", msg) if {
	input.consent.required
	count(input.consent.missing) > 0
	# a kind without products (a model) is named by its kind: the rule must not go
	# undefined, and so silent, for want of a product
	msg := sprintf(
		"subjects %v have no valid consent for %s, purpose %s, product %s",
		[input.consent.missing, input.operator.id, input.purpose, object.get(input.operation, "product", input.operation.kind)],
	)
}
