# Models (模型): an approved ONNX model scores consented subjects, or gives statistics
# of its scores over a cohort of at least k subjects. The gateway also refuses, by
# itself, any model that is not approved, expired, or asked in a form not approved.
package dataauth

import rego.v1

kinds contains "model"

model_limits := data.dataauth.limits.model

kind_obligations["model"] := object.union(
	object.union(
		{
			"batch_limit": model_limits.batch_limit,
			"min_group_size": model_limits.min_group_size,
			"score_digits": model_limits.score_digits,
			"statistic_digits": model_limits.statistic_digits,
			"count_multiple": model_limits.count_multiple,
		},
		model_dp,
	),
	object.get(object.get(model_limits, "operators", {}), input.operator.id, {}),
)

is_model if input.operation.kind == "model"

# a cohort's statistics over sensitive features are answered with noise, and spend the
# same ε account as the operator's aggregate queries on the dataset (query_budget): two
# cohorts that differ by one subject must not give away that subject's score
model_noised if {
	is_model
	input.operation.form == "cohort"
	some column in input.columns
	column.use == "feature"
	column.level in model_limits.dp.levels
}

model_dp := {"dp": {
	"mechanism": model_limits.dp.mechanism,
	"epsilon": model_limits.dp.epsilon,
	"delta": object.get(model_limits.dp, "delta", 0),
	"threshold_delta": object.get(model_limits.dp, "threshold_delta", null),
	"budget": {
		"key": sprintf("%s|%s", [input.operator.id, input.dataset.id]),
		"epsilon": query_budget.epsilon,
	},
}} if model_noised

default model_dp := {}

deny contains reason("noise_unavailable", msg) if {
	model_noised
	"quantiles" in input.cohort.statistics
	msg := sprintf(
		"model %s's cohort is answered with noise, and quantiles cannot be; ask for the count, mean or histogram",
		[input.model.id],
	)
}

deny contains reason("model_not_approved", msg) if {
	is_model
	input.model.status != "approved"
	msg := sprintf("model %s is %s, not approved", [input.model.id, input.model.status])
}

deny contains reason("model_expired", msg) if {
	is_model
	input.model.status == "approved"
	input.time >= input.model.expires
	msg := sprintf("the approval of model %s expired at %s", [input.model.id, input.model.expires])
}

deny contains reason("form_not_approved", msg) if {
	is_model
	input.model.status == "approved"
	not input.operation.form in input.model.forms
	msg := sprintf("model %s is not approved for %s answers", [input.model.id, input.operation.form])
}

deny contains reason("model_not_owned", msg) if {
	is_model
	input.model.operator != input.operator.id
	msg := sprintf("model %s was submitted by another operator", [input.model.id])
}

deny contains reason("purpose_not_approved", msg) if {
	is_model
	input.purpose != input.model.purpose
	msg := sprintf("model %s was approved for the purpose %s", [input.model.id, input.model.purpose])
}

deny contains reason("batch_too_large", msg) if {
	is_model
	input.subjects.count > model_limits.batch_limit
	msg := sprintf(
		"a batch of %d subjects is over the limit of %d",
		[input.subjects.count, model_limits.batch_limit],
	)
}

# a model reads its features; a score looks subjects up by key, a cohort selects them
# by comparisons. No column is returned as it is.
model_uses := {"score": {"key", "feature"}, "cohort": {"feature", "compare"}}

deny contains reason("column_use_not_allowed", msg) if {
	is_model
	some column in input.columns
	not column.use in model_uses[input.operation.form]
	msg := sprintf("a model's %s may not use column %s as %s", [input.operation.form, column.name, column.use])
}
