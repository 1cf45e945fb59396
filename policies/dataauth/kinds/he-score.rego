# Encrypted scoring (密态计算, he-score): the operator's encrypted linear model over the
# department's data; only ciphertexts leave. Per-subject scores need consent where the
# product says so (the spine checks it; decision.rego denies without it); aggregates
# need a cohort of at least min_group_size; noise_bits sets the least noise added to every
# result; score_bits widens a score's noise to its model's declared range, so that one
# score reveals at most score_bits bits about its subject (what it is charged). Aggregates
# over sensitive features are noised (dp) and spend the operator's ε account on the
# dataset, the one its aggregate queries and model cohorts spend (query_budget).
package dataauth

import rego.v1

kinds contains "he-score"

he_limits := data.dataauth.limits.he_score

# the per-subject limit against probing: this kind's, or a lower one from the usage data
he_subject_limit := min([he_limits.subject_per_day, usage.subject_per_day]) if {
	"subject_per_day" in object.keys(usage)
}

he_subject_limit := he_limits.subject_per_day if {
	not "subject_per_day" in object.keys(usage)
}

kind_obligations["he-score"] := object.union(
	{
		"batch_limit": he_limits.batch_limit,
		"min_group_size": he_limits.min_group_size,
		"noise_bits": object.get(he_limits.noise_bits, input.operation.mode, 0),
		"score_bits": he_limits.score_bits,
		"usage": object.union(usage, {"subject_per_day": he_subject_limit}),
	},
	he_dp,
)

# a cohort's count and feature sums are noised before they meet the encrypted weights:
# weights that differ per slot then read only noisy sums
he_noised if {
	input.operation.kind == "he-score"
	input.operation.mode in {"sum", "mean"}
	some column in input.columns
	column.use == "feature"
	column.level in he_limits.dp.levels
}

he_dp := {"dp": {
	"mechanism": he_limits.dp.mechanism,
	"epsilon": he_limits.dp.epsilon,
	"delta": object.get(he_limits.dp, "delta", 0),
	"budget": {
		"key": sprintf("%s|%s", [input.operator.id, input.dataset.id]),
		"epsilon": query_budget.epsilon,
	},
}} if he_noised

default he_dp := {}

deny contains reason("batch_too_large", msg) if {
	input.operation.kind == "he-score"
	input.subjects.count > he_limits.batch_limit
	msg := sprintf(
		"a batch of %d subjects is over the limit of %d",
		[input.subjects.count, he_limits.batch_limit],
	)
}

deny contains reason("he_parameters_not_allowed", msg) if {
	input.operation.kind == "he-score"
	not input.he.parameters in he_limits.parameters
	msg := sprintf("the CKKS parameter set %s is not allowed", [input.he.parameters])
}

# a model reads features; a cohort filter compares; a subject is looked up by key
deny contains reason("column_use_not_allowed", msg) if {
	input.operation.kind == "he-score"
	some column in input.columns
	not column.use in {"key", "feature", "compare"}
	msg := sprintf("encrypted scoring may not use column %s as %s", [column.name, column.use])
}

deny contains reason("too_many_features", msg) if {
	input.operation.kind == "he-score"
	input.he.features > he_limits.max_features
	msg := sprintf("a model reads at most %d features", [he_limits.max_features])
}
