// The hyperlab page: one VM with its terminal and the live stack view.
import { defineHyperlabVm } from "./hyperlab-vm.ts";

defineHyperlabVm();
