// Evaluates IAM requests against identity and resource policies with @cloud-copilot/iam-simulate
// (an IAM policy evaluator that knows every action's resource types and condition keys).
// stdin: {"policies": {principal: [policy, ...]}, "resourcePolicies": {arn: policy},
//         "principals": {principal: arn}, "account": "123...", "requests": [
//           {"principal", "action", "resource", "context": {key: value}}, ...]}
// stdout: one {"result": "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied" | "Error",
//              "errors"?: ...} per request, in order, as a JSON array.
import { runSimulation } from '@cloud-copilot/iam-simulate'

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const input = JSON.parse(Buffer.concat(chunks).toString('utf8'))

const results = []
for (const request of input.requests) {
  const simulation = {
    request: {
      principal: input.principals[request.principal],
      action: request.action,
      resource: { resource: request.resource, accountId: input.account },
      contextVariables: request.context ?? {}
    },
    identityPolicies: (input.policies[request.principal] ?? []).map((policy, i) => ({
      name: `${request.principal}-${i}`,
      policy
    })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: input.resourcePolicies[request.resourcePolicy ?? ''] ?? undefined
  }
  const response = await runSimulation(simulation, {})
  if (response.resultType === 'error') {
    results.push({ result: 'Error', errors: response.errors })
  } else {
    results.push({ result: response.overallResult })
  }
}
process.stdout.write(JSON.stringify(results))
