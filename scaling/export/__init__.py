"""export_scaling_stack: what install_scaling_policy installs, as a template.

The resources are built by the installer's own request builders
(``scaling.export.resources``), then written as CloudFormation
(``scaling.export.cloudformation``) or Terraform (``scaling.export.terraform``).
"""
