// Runs executions of a state machine on aws-local-stepfunctions (a second, independent ASL
// interpreter) with canned task results, and reports the states each entered and how it ended.
// stdin: {"definition": {...}, "unrecorded": {state: output}, "cases": [{"name", "input",
//          "context", "results": {key: [{"output": any} | {"error": str, "cause": str}, ...]}}]}
// "unrecorded": the output of tasks whose results no history given here holds (the children of
// a Distributed Map are executions of their own); used only when the input has no result.
// A task's result is looked up by its input with "retries" removed (this interpreter has no
// $$.State.RetryCount; the context gives 0), in the order the embedded engine produced them.
// stdout: [{"name", "status": "SUCCEEDED" | "FAILED", "output"?, "error"?, "cause"?,
//           "entered": [state names], "unused": [keys of results never asked for]}]

// Node 20 has no Promise.withResolvers (aws-local-stepfunctions 3 uses it; Node 22 has it).
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers() {
    let resolve, reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}
const { StateMachine } = await import('aws-local-stepfunctions')

export function key(value) {
  const canonical = (v) => Array.isArray(v) ? v.map(canonical)
    : v && typeof v === 'object'
      ? Object.fromEntries(Object.keys(v).filter((k) => k !== 'retries').sort()
        .map((k) => [k, canonical(v[k])]))
      : v
  return JSON.stringify(canonical(value))
}

function stateNames(states, kind, found = []) {
  for (const [name, state] of Object.entries(states)) {
    if (!kind || state.Type === kind) found.push(name)
    const inner = state.ItemProcessor ?? state.Iterator
    if (inner) stateNames(inner.States, kind, found)
  }
  return found
}

async function replay(definition, unrecorded, testCase) {
  const queues = new Map(Object.entries(testCase.results).map(([k, v]) => [k, [...v]]))
  const handler = (state) => (input) => {
    const queue = queues.get(key(input))
    if ((!queue || queue.length === 0) && state in unrecorded) return unrecorded[state]
    if (!queue || queue.length === 0) {
      const error = new Error(`no canned result for ${key(input)}`)
      error.name = 'Replay.NoCannedResult'
      throw error
    }
    const outcome = queue.shift()
    if ('error' in outcome) {
      const error = new Error(outcome.cause ?? '')
      error.name = outcome.error
      throw error
    }
    return outcome.output
  }
  const tasks = Object.fromEntries(stateNames(definition.States, 'Task').map((n) => [n, handler(n)]))
  const waits = Object.fromEntries(stateNames(definition.States, 'Wait').map((n) => [n, 0]))
  const retries = Object.fromEntries(stateNames(definition.States).map((n) => [n, 0]))
  const machine = new StateMachine(definition, { validationOptions: { checkPaths: true } })
  const execution = machine.run(testCase.input, {
    context: testCase.context,
    overrides: { taskResourceLocalHandlers: tasks, waitTimeOverrides: waits,
      retryIntervalOverrides: retries }
  })
  const entered = []
  const logging = (async () => {
    for await (const event of execution.eventLogs) {
      if (event.type === 'StateEntered') entered.push(event.state.name)
    }
  })()
  const report = { name: testCase.name, entered }
  try {
    report.output = await execution.result
    report.status = 'SUCCEEDED'
  } catch (thrown) {
    const error = thrown.name === 'ExecutionError' && thrown.cause ? thrown.cause : thrown
    report.status = 'FAILED'
    report.error = error.name
    report.cause = error.message
  }
  await logging
  report.unused = [...queues].filter(([, queue]) => queue.length > 0).map(([k]) => k)
  return report
}

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const { definition, unrecorded, cases } = JSON.parse(Buffer.concat(chunks).toString('utf8'))
const reports = []
for (const testCase of cases) reports.push(await replay(definition, unrecorded ?? {}, testCase))
process.stdout.write(JSON.stringify(reports))
