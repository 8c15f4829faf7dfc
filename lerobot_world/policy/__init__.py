"""The world_vla policy, in LeRobot's plugin shape: configuration_ / modeling_ / processor_world_vla siblings
(LeRobot finds the model by rewriting the config's module name), the Hub model card, and the evaluators'
autocast. Empty on purpose: importing the package imports neither torch nor LeRobot."""
