"""Least privilege, checked on the translated template (plain CloudFormation JSON).

Every IAM statement that touches secrets (Secrets Manager, KMS, S3, EFS) names its actions and
its resources: no `*` action, no `*` resource, and an S3 object wildcard only under the one
prefix. The only statement allowed `Resource: "*"` is the one EC2 network-interface statement
Lambda needs to join the VPC. No managed policy. The key policy lets the function only decrypt
and generate data keys, each under a condition.

usage: python test_least_privilege.py TRANSLATED.json   (unittest; exit status 0 = all passed)
"""

import json
import sys
import unittest

SENSITIVE = ("secretsmanager:", "ssm:", "kms:", "s3:", "elasticfilesystem:")
# What Lambda needs to attach a function to a VPC; EC2 does not scope these by resource.
ENI_ACTIONS = {
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
}
TEMPLATE = None


def as_list(value):
    return value if isinstance(value, list) else [value]


def text(value):
    """A resource as text: a literal, or the string inside Fn::Sub / Fn::GetAtt / Ref."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "Fn::Sub" in value:
            sub = value["Fn::Sub"]
            return sub if isinstance(sub, str) else sub[0]
        if "Fn::GetAtt" in value:
            return "${%s}" % ".".join(as_list(value["Fn::GetAtt"]))
        if "Ref" in value:
            return "${%s}" % value["Ref"]
    return json.dumps(value)


def identity_statements(template):
    """(where, statement) for every statement of every identity policy in the template."""
    for name, resource in template["Resources"].items():
        kind, props = resource["Type"], resource.get("Properties", {})
        documents = []
        if kind == "AWS::IAM::Role":
            documents = [(f"{name}/{p['PolicyName']}", p["PolicyDocument"]) for p in props.get("Policies", [])]
        elif kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents = [(name, props["PolicyDocument"])]
        for where, document in documents:
            for statement in as_list(document["Statement"]):
                yield where, statement


def problems(statements):
    """What is wrong with these identity statements, as messages (empty: least privilege)."""
    found = []
    for where, statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        actions = [a for a in as_list(statement.get("Action", [])) if isinstance(a, str)]
        resources = [text(r) for r in as_list(statement.get("Resource", []))]
        sid = statement.get("Sid", "?")
        if "NotAction" in statement or "NotResource" in statement:
            found.append(f"{where}/{sid}: NotAction/NotResource")
        if any("*" in a.split(":", 1)[0] or a == "*" for a in actions):
            found.append(f"{where}/{sid}: wildcard service in {actions}")
        if not any(a.startswith(SENSITIVE) for a in actions):
            # Outside the secret-touching services only the ENI statement may use "*".
            if "*" in resources and not set(actions) <= ENI_ACTIONS:
                found.append(f"{where}/{sid}: Resource * for {actions}")
            continue
        for action in actions:
            if "*" in action:
                found.append(f"{where}/{sid}: wildcard action {action}")
        for resource in resources:
            if resource == "*":
                found.append(f"{where}/{sid}: Resource *")
            elif "*" in resource:
                # Objects under one fixed prefix: ".../${Prefix}/*" and nothing wider.
                if not (resource.endswith("/${Prefix}/*") and resource.count("*") == 1):
                    found.append(f"{where}/{sid}: wildcard resource {resource}")
    return found


class LeastPrivilege(unittest.TestCase):
    def test_secret_touching_statements_name_actions_and_resources(self):
        statements = list(identity_statements(TEMPLATE))
        self.assertTrue(statements, "no identity policy found")
        self.assertEqual(problems(statements), [])

    def test_each_service_is_granted_only_what_the_function_uses(self):
        granted = {}
        for _, statement in identity_statements(TEMPLATE):
            for action in as_list(statement["Action"]):
                granted.setdefault(action.split(":")[0], set()).add(action)
        self.assertEqual(granted["secretsmanager"], {"secretsmanager:GetSecretValue"})
        self.assertEqual(granted["ssm"], {"ssm:GetParameter"})
        self.assertEqual(granted["s3"], {"s3:GetObject", "s3:GetObjectVersion"})
        self.assertEqual(granted["kms"], {"kms:Decrypt", "kms:GenerateDataKey"})
        self.assertEqual(granted["elasticfilesystem"],
                         {"elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"})

    def test_key_use_is_conditioned_and_efs_is_one_access_point(self):
        for _, statement in identity_statements(TEMPLATE):
            actions = as_list(statement["Action"])
            if any(a.startswith(("kms:", "elasticfilesystem:")) for a in actions):
                self.assertIn("Condition", statement, statement)
            if any(a.startswith("elasticfilesystem:") for a in actions):
                condition = statement["Condition"]["StringEquals"]["elasticfilesystem:AccessPointArn"]
                self.assertEqual(condition, {"Fn::GetAtt": ["AccessPoint", "Arn"]})

    def test_no_managed_policies(self):
        for name, resource in TEMPLATE["Resources"].items():
            if resource["Type"] == "AWS::IAM::Role":
                self.assertFalse(resource["Properties"].get("ManagedPolicyArns"), name)

    def test_the_function_runs_as_the_least_privilege_role(self):
        function = TEMPLATE["Resources"]["Function"]
        self.assertEqual(function["Type"], "AWS::Lambda::Function")
        self.assertEqual(function["Properties"]["Role"], {"Fn::GetAtt": ["FunctionRole", "Arn"]})

    def test_the_key_policy_lets_the_function_only_decrypt_and_generate_data_keys(self):
        key = TEMPLATE["Resources"]["Key"]["Properties"]
        self.assertTrue(key["EnableKeyRotation"])
        function_statements = [
            s for s in key["KeyPolicy"]["Statement"]
            if s["Principal"].get("AWS") == {"Fn::GetAtt": ["FunctionRole", "Arn"]}
        ]
        # Envelopes (secret-loader context), services decrypting for it (kms:ViaService), and
        # the variable sealed for it (its own name as the context).
        self.assertEqual(len(function_statements), 3)
        for statement in function_statements:
            self.assertLessEqual(set(as_list(statement["Action"])), {"kms:Decrypt", "kms:GenerateDataKey"})
            self.assertIn("Condition", statement)

    def test_the_sealed_variable_opens_only_in_its_own_function(self):
        statements = [s for _, s in identity_statements(TEMPLATE) if s.get("Sid") == "OpenTheSealedVariable"]
        self.assertEqual(len(statements), 1)
        condition = statements[0]["Condition"]["StringEquals"]
        self.assertEqual(
            condition["kms:EncryptionContext:LambdaFunctionName"],
            {"Fn::Sub": "${AWS::StackName}-comparison"},
        )
        self.assertEqual(as_list(statements[0]["Action"]), ["kms:Decrypt"])

    def test_the_parameter_statement_names_the_one_parameter(self):
        statements = [s for _, s in identity_statements(TEMPLATE) if s.get("Sid") == "ReadTheParameter"]
        self.assertEqual(len(statements), 1)
        self.assertTrue(text(statements[0]["Resource"]).endswith(":parameter/${SecretName}"))

    def test_the_bucket_is_versioned_private_and_tls_only(self):
        bucket = TEMPLATE["Resources"]["Bucket"]["Properties"]
        self.assertEqual(bucket["VersioningConfiguration"]["Status"], "Enabled")
        self.assertTrue(all(bucket["PublicAccessBlockConfiguration"].values()))
        policy = TEMPLATE["Resources"]["BucketPolicy"]["Properties"]["PolicyDocument"]
        deny = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
        self.assertEqual(deny[0]["Condition"], {"Bool": {"aws:SecureTransport": "false"}})


class TheVariablesMatchTheMapping(unittest.TestCase):
    """env+kms:// and env:// read `prefix + upper(name)`, `_` for anything outside A-Z 0-9 _;
    CloudFormation can't compute that, so the template spells it out for the default
    SecretName: this keeps the two in step."""

    def test_the_variable_names_are_the_default_secret_names(self):
        import re
        name = TEMPLATE["Parameters"]["SecretName"]["Default"]
        mapped = re.sub(r"[^A-Z0-9_]", "_", name.upper())
        variables = TEMPLATE["Resources"]["Function"]["Properties"]["Environment"]["Variables"]
        self.assertIn("SEALED_" + mapped, variables)
        self.assertIn("PLAIN_" + mapped, variables)
        self.assertEqual(variables["SEALED_" + mapped], {"Ref": "SealedSecret"})
        self.assertNotEqual(variables["PLAIN_" + mapped], {"Ref": "SealedSecret"})


class TheCheckCanFail(unittest.TestCase):
    """The checker itself: each kind of over-grant is caught."""

    def check(self, statement):
        return problems([("Test", dict({"Effect": "Allow", "Sid": "X"}, **statement))])

    def test_wildcards_are_caught(self):
        self.assertTrue(self.check({"Action": "kms:*", "Resource": {"Fn::GetAtt": ["Key", "Arn"]}}))
        self.assertTrue(self.check({"Action": "secretsmanager:GetSecretValue", "Resource": "*"}))
        self.assertTrue(self.check({"Action": "s3:GetObject", "Resource": {"Fn::Sub": "${Bucket.Arn}/*"}}))
        self.assertTrue(self.check({"Action": "*", "Resource": "*"}))
        self.assertTrue(self.check({"Action": "logs:PutLogEvents", "Resource": "*"}))
        self.assertTrue(self.check({"NotAction": "iam:*", "Action": [], "Resource": "*"}))

    def test_scoped_statements_pass(self):
        self.assertEqual(self.check({"Action": "s3:GetObject", "Resource": {"Fn::Sub": "${Bucket.Arn}/${Prefix}/*"}}), [])
        self.assertEqual(self.check({"Action": "ec2:CreateNetworkInterface", "Resource": "*"}), [])


if __name__ == "__main__":
    with open(sys.argv.pop(1), encoding="utf-8") as f:
        TEMPLATE = json.load(f)
    unittest.main(verbosity=1)
