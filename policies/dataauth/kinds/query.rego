# Aggregate queries (聚合查询): checked SQL over one dataset, or two joined as the
# catalog declares, answered as groups of at least k subjects, with differential-privacy
# noise where the columns touched are sensitive enough. A query is licensed per dataset:
# "query:<dataset>" in the licence's products (the common rule product_not_licensed
# checks the FROM dataset's; below, a join needs every dataset's).
package dataauth

import rego.v1

kinds contains "query"

query_limits := data.dataauth.limits.query

# noise applies when any column the query touches is at one of these levels: a
# difference of two large groups must not reveal one subject's sensitive value. A
# join's own key columns do not count: they are matched inside the database, and no
# value of them is compared with the operator's or returned.
query_noised_columns contains sprintf("%s.%s", [column_dataset(column), column.name]) if {
	input.operation.kind == "query"
	some column in input.columns
	not query_join_key(column)
	column.level in query_limits.dp.levels
}

# through a join an L1 column of the left side (an enterprise's name) can single out one
# right-hand subject (its legal representative), so the right side's columns at these
# levels need noise too, even where a query of that dataset alone would be exact
query_noised_columns contains sprintf("%s.%s", [column.dataset, column.name]) if {
	input.operation.kind == "query"
	some column in input.columns
	column.dataset == input.join.on[1].dataset
	not query_join_key(column)
	column.level in object.get(query_limits.dp, "join_levels", [])
}

# an exact answer must not become an oracle, nor difference into one subject's value.
# k-suppression decides on true counts, so a WHERE that compares a column above the
# exact levels could single out one subject and make "is the group there?" answer a
# question about that column (income >= T, capital >= T); an exact SUM or AVG of such a
# column, asked with and without one subject (name <> '...'), or a group's total beside
# its released subgroups, is that subject's value; and a group label above the exact
# levels, counted with and without one subject, names the subject's label. So an exact
# answer compares and aggregates only columns at the exact levels, and shows a label
# above them only over the whole dataset (no WHERE). Anything else is noised, its groups
# selected on noisy counts. Without exact_levels, every column but a label brings noise.
query_exact_level(column) if column.level in object.get(query_limits, "exact_levels", [])

query_noised_columns contains sprintf("%s.%s", [column_dataset(column), column.name]) if {
	input.operation.kind == "query"
	some column in input.columns
	column.use in {"compare", "aggregate"}
	not query_join_key(column)
	not query_exact_level(column)
}

query_noised_columns contains sprintf("%s.%s", [column_dataset(column), column.name]) if {
	input.operation.kind == "query"
	count(input.query.filters) > 0
	some column in input.columns
	column.use == "plaintext"
	not query_exact_level(column)
}

query_noised if count(query_noised_columns) > 0

# the columns the declared join equates, as dataset.column
query_join_columns contains sprintf("%s.%s", [on.dataset, on.column]) if {
	some on in input.join.on
}

query_join_key(column) if {
	column.use == "key"
	sprintf("%s.%s", [column_dataset(column), column.name]) in query_join_columns
}

query_budget := object.get(
	object.get(query_limits.budget, "operators", {}),
	input.operator.id,
	query_limits.budget.defaults,
)

query_dp_terms := {
	"mechanism": query_limits.dp.mechanism,
	"epsilon": query_limits.dp.epsilon,
	"delta": object.get(query_limits.dp, "delta", 0),
	# δ of choosing which groups appear on noisy counts; without it a noised query refuses
	"threshold_delta": object.get(query_limits.dp, "threshold_delta", null),
}

query_account(dataset) := {
	"key": sprintf("%s|%s", [input.operator.id, dataset]),
	"epsilon": query_budget.epsilon,
}

# one dataset: its one account
query_dp := {"dp": object.union(query_dp_terms, {"budget": query_account(input.dataset.id)})} if {
	query_noised
	not input.join
}

# a join releases facts about both datasets' subjects: it charges the account on each,
# left then right, both or neither
query_dp := {"dp": object.union(query_dp_terms, {"budgets": budgets})} if {
	query_noised
	input.join
	budgets := [query_account(on.dataset) | some on in input.join.on]
}

default query_dp := {}

kind_obligations["query"] := object.union({"min_group_size": query_limits.min_group_size}, query_dp)

# a query aggregates, compares in WHERE, and shows group labels; nothing else, but for
# a join's own two columns, used as key
deny contains reason("column_use_not_allowed", msg) if {
	input.operation.kind == "query"
	some column in input.columns
	not column.use in {"aggregate", "compare", "plaintext"}
	not query_join_key(column)
	msg := sprintf("a query may not use column %s as %s", [column.name, column.use])
}

# a join reads two datasets: the licence must cover queries on each
deny contains reason("product_not_licensed", msg) if {
	input.operation.kind == "query"
	licence
	some dataset in input.join.datasets
	product := sprintf("query:%s", [dataset])
	not product in licence.products
	msg := sprintf("the licence of %s does not cover the product %s", [input.operator.id, product])
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
