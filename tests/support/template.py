"""template.yaml read as CloudFormation resolves it, for the tests in tests/template/.

The template is read with a YAML loader that turns CloudFormation's short tags into their
long forms; ``Stack`` resolves them with the parameters' defaults and a bucket named ``data``;
``grants`` lists what each role is allowed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
EVENTS = REPO / "tests" / "events"
SAM_PYTHON = REPO / ".venv" / "sam-cli" / "bin" / "python"  # made by `make template-check`
LAYER_CACHE = REPO / ".aws-sam" / "handler-check"  # .aws-sam/ is gitignored
BUCKET, REGION, ACCOUNT, STACK = "data", "us-east-1", "123456789012", "s3split"
NO_VALUE = object()


# -- reading the template ----------------------------------------------------------------------


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, !GetAtt, !If, ...)."""


def _short_tag(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _short_tag)


def load_template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)  # CfnLoader is a SafeLoader


class Stack:
    """The template with parameters filled in, intrinsic functions resolved as CloudFormation
    would, and names for what only exists once deployed."""

    def __init__(self, template: dict[str, Any], **parameters: str) -> None:
        self.template = template
        self.params = {name: str(spec.get("Default", ""))
                       for name, spec in template["Parameters"].items()}
        unknown = set(parameters) - set(self.params)
        assert not unknown, f"no such parameters: {unknown}"
        self.params.update(parameters)
        self.conditions = {name: self.value(expr)
                           for name, expr in template.get("Conditions", {}).items()}

    def resources(self, kind: str | None = None) -> dict[str, dict[str, Any]]:
        """Resources that exist with these parameters (their Condition holds)."""
        return {name: res for name, res in self.template["Resources"].items()
                if (kind is None or res["Type"] == kind)
                and self.conditions.get(res.get("Condition", ""), True)}

    def props(self, name: str) -> dict[str, Any]:
        return dict(self.value(self.template["Resources"][name].get("Properties", {})))

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in map(self.value, node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Condition":
                return self.conditions[arg]
            if key == "Fn::GetAtt":
                return self.getatt(*arg)
            if key == "Fn::Sub":
                return self.sub(arg)
            if key == "Fn::If":
                name, then, otherwise = arg
                return self.value(then if self.conditions[name] else otherwise)
            if key == "Fn::Equals":
                return self.value(arg[0]) == self.value(arg[1])
            if key == "Fn::Not":
                return not self.value(arg[0])
            if key.startswith("Fn::"):
                raise NotImplementedError(key)
        resolved = {k: self.value(v) for k, v in node.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def ref(self, name: str) -> Any:
        pseudo = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws",
                  "AWS::StackName": STACK, "AWS::NoValue": NO_VALUE}
        if name in pseudo:
            return pseudo[name]
        if name in self.params:
            return self.params[name]
        kind = self.template["Resources"][name]["Type"]
        if kind == "AWS::S3::Bucket":
            return BUCKET
        if kind == "AWS::Serverless::StateMachine":
            return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"
        if kind == "AWS::DynamoDB::Table":
            return self.props(name)["TableName"]
        return name

    def getatt(self, name: str, attribute: str) -> str:
        kind = self.template["Resources"][name]["Type"]
        if (kind, attribute) == ("AWS::Serverless::StateMachine", "Name"):
            return name
        assert attribute == "Arn", attribute
        arns = {
            "AWS::S3::Bucket": f"arn:aws:s3:::{BUCKET}",
            "AWS::Serverless::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
            "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/{name}",
            "AWS::Logs::LogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*",
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{self.ref(name)}",
            "AWS::Events::Rule": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}",
            "AWS::CloudWatch::Alarm": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}",
        }
        return arns[kind]

    def sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else arg

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(self.value(variables[name]))
            if "." in name:
                return self.getatt(*name.split(".", 1))
            return str(self.ref(name))

        return re.sub(r"\$\{([^!}][^}]*)\}", one, text)

    def function_env(self, name: str) -> dict[str, str]:
        """Globals' variables overlaid by the function's own, as SAM merges them."""
        globals_env = self.value(self.template["Globals"]["Function"]["Environment"]["Variables"])
        own = self.props(name).get("Environment", {}).get("Variables", {})
        return {k: str(v) for k, v in (globals_env | own).items()}


TEMPLATE_DOC = load_template()
FUNCTIONS = sorted(name for name, res in TEMPLATE_DOC["Resources"].items()
                   if res["Type"] == "AWS::Serverless::Function")


# -- what the roles are allowed ----------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policy_documents(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    """The policy documents of each role, resolved (its own and those attached to it)."""
    raw: dict[str, list[Any]] = {}
    for name, res in stack.resources().items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::IAM::Role":
            assert "ManagedPolicyArns" not in props, f"{name}: managed policies are opaque"
            assert "PermissionsBoundary" not in props
            raw.setdefault(name, [])
            for policy in props.get("Policies", []):
                raw[name].append(policy["PolicyDocument"])
        elif res["Type"] in ("AWS::IAM::RolePolicy", "AWS::IAM::Policy"):
            roles = [props["RoleName"]] if "RoleName" in props else props["Roles"]
            for role in roles:
                raw.setdefault(role["Ref"], []).append(props["PolicyDocument"])
        elif res["Type"].startswith("AWS::Serverless::"):
            assert "Policies" not in props, f"{name}: give it an explicit role"
    return {role: stack.value(documents) for role, documents in raw.items()}


def grants(stack: Stack) -> dict[str, list[tuple[str, str, str]]]:
    """(action, resource, condition as JSON) of every Allow, by role; Deny statements refuse."""
    result: dict[str, list[tuple[str, str, str]]] = {}
    for role, documents in policy_documents(stack).items():
        result[role] = []
        for document in documents:
            for statement in document["Statement"]:
                assert "NotAction" not in statement and "NotResource" not in statement
                if statement["Effect"] != "Allow":
                    continue
                condition = json.dumps(statement.get("Condition"), sort_keys=True)
                result[role].extend((action, resource, condition)
                                    for action in _as_list(statement["Action"])
                                    for resource in _as_list(statement["Resource"]))
    return result
