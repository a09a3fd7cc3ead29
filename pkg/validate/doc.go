// Package validate is the validation agent: it decides whether each captured change is
// approved, skipped, rejected or held, and records why and who decided.
//
// Three steps decide, in order: the bulk guard (DecidedBy "guard:bulk"), the CEL rules
// ("rule:<name>") and the LLM reviewer ("llm:<model>"). A change none of them decides is
// approved by "changesync:default". A burst detector raises alerts without deciding
// anything. Agent runs the steps and implements the pipeline's Validator.
package validate
