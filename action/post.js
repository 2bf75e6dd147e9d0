// The setup action's post step (runs when the job ends, also after a
// failure): stop rtemu, which removes the sandboxes it made.
const { run } = require("./run");
run("stop");
