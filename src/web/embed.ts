// The one script a course page includes: it defines <hyperlab-vm>.
//   <script type="module" src="https://your.site/hyperlab-vm.js"></script>
//   <hyperlab-vm></hyperlab-vm>
import { defineHyperlabVm } from "./hyperlab-vm.ts";

defineHyperlabVm();
