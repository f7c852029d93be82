// The one script a course page includes: it defines <hyperlab-vm> and
// <hyperlab-lab> (a lab beside its VM's terminal; its parser loads only on a
// page that has one).
//   <script type="module" src="https://your.site/hyperlab-vm.js"></script>
//   <hyperlab-vm></hyperlab-vm>
//   <hyperlab-lab src="labs/cgroups.md"></hyperlab-lab>
import { defineHyperlabLab } from "./hyperlab-lab.ts";
import { defineHyperlabVm } from "./hyperlab-vm.ts";

defineHyperlabVm();
defineHyperlabLab();
