# Aggregate queries (聚合查询): checked SQL over one dataset, answered as groups of at
# least k subjects, with differential-privacy noise where the columns touched are
# sensitive enough. A query is licensed per dataset: "query:<dataset>" in the licence's
# products (the common rule product_not_licensed checks it).
package dataauth

import rego.v1

kinds contains "query"

query_limits := data.dataauth.limits.query

# noise applies when any column the query touches is at one of these levels: a
# difference of two large groups must not reveal one subject's sensitive value
query_noised if {
	input.operation.kind == "query"
	some column in input.columns
	column.level in query_limits.dp.levels
}

query_budget := object.get(
	object.get(query_limits.budget, "operators", {}),
	input.operator.id,
	query_limits.budget.defaults,
)

query_dp := {"dp": {
	"mechanism": query_limits.dp.mechanism,
	"epsilon": query_limits.dp.epsilon,
	"delta": object.get(query_limits.dp, "delta", 0),
	"budget": {
		"key": sprintf("%s|%s", [input.operator.id, input.dataset.id]),
		"epsilon": query_budget.epsilon,
	},
}} if query_noised

default query_dp := {}

kind_obligations["query"] := object.union({"min_group_size": query_limits.min_group_size}, query_dp)

# a query aggregates, compares in WHERE, and shows group labels; nothing else
deny contains reason("column_use_not_allowed", msg) if {
	input.operation.kind == "query"
	some column in input.columns
	not column.use in {"aggregate", "compare", "plaintext"}
	msg := sprintf("a query may not use column %s as %s", [column.name, column.use])
}

# MIN and MAX are one subject's value: no bounded noise hides it
deny contains reason("noise_unavailable", msg) if {
	query_noised
	some aggregate in input.query.aggregates
	aggregate.function in {"min", "max"}
	msg := sprintf(
		"%s of %s: this query is answered with noise, and a minimum or maximum cannot be; ask for a mean or a count",
		[aggregate.function, aggregate.column],
	)
}
